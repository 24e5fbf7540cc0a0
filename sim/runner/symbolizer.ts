/** Makes traces readable: full and short sha256 IDs and digests become the scenario's symbols. */
export function makeSymbolizer(symbols: Readonly<Record<string, string>>): (text: string) => string {
  // Built on first use: most runs of a sweep or a random search never print anything.
  let full: Map<string, string> | undefined;
  let short: Map<string, string> | undefined;
  const build = (): [Map<string, string>, Map<string, string>] => {
    full = new Map();
    short = new Map();
    for (const [id, symbol] of Object.entries(symbols)) {
      const hex = id.startsWith('sha256:') ? id.slice(7) : id;
      full.set(hex, symbol);
      short.set(hex.slice(0, 12), symbol);
    }
    return [full, short];
  };
  return (text) => {
    if (!full || !short) [full, short] = build();
    return symbolize(text, full, short);
  };
}

function symbolize(
  text: string,
  full: ReadonlyMap<string, string>,
  short: ReadonlyMap<string, string>,
): string {
  return text
    .replace(/sha256:([0-9a-f]{64})/g, (m, hex: string) =>
      full.has(hex) ? `<${full.get(hex)}>` : `sha256:${hex.slice(0, 12)}`,
    )
    .replace(/\b([0-9a-f]{12})\b/g, (m, hex: string) => (short.has(hex) ? `<${short.get(hex)}>` : m));
}
