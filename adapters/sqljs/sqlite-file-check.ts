const MAGIC = 'SQLite format 3\0';
const HEADER_SIZE = 100;

/**
 * What is wrong with the bytes of an SQLite file, judged from its header alone, or null when the header
 * is consistent. SQLite itself opens a zero-byte file as an empty database and reads a truncated one
 * until it trips over a missing page, so these checks catch what opening would hide. Our files are
 * always whole exports, so any size the header does not account for is damage.
 */
export function sqliteFileProblem(bytes: Uint8Array): string | null {
  if (bytes.byteLength === 0) return 'the file is empty (0 bytes)';
  if (bytes.byteLength < HEADER_SIZE) {
    return `truncated: ${bytes.byteLength} bytes is shorter than the ${HEADER_SIZE}-byte SQLite header`;
  }
  const magic = String.fromCharCode(...bytes.subarray(0, MAGIC.length));
  if (magic !== MAGIC) return 'not an SQLite database (bad header magic)';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawPageSize = view.getUint16(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    return `invalid page size ${rawPageSize} in the header`;
  }
  if (bytes.byteLength % pageSize !== 0) {
    return `truncated: ${bytes.byteLength} bytes is not a whole number of ${pageSize}-byte pages`;
  }
  // The in-header page count is trustworthy only when written by the same change as the counter.
  const changeCounter = view.getUint32(24);
  const pageCount = view.getUint32(28);
  const validFor = view.getUint32(92);
  if (pageCount !== 0 && changeCounter === validFor) {
    const pages = bytes.byteLength / pageSize;
    if (pages < pageCount)
      return `truncated: the header declares ${pageCount} pages, the file holds ${pages}`;
    if (pages > pageCount) return `${pages - pageCount} pages beyond the ${pageCount} the header declares`;
  }
  return null;
}
