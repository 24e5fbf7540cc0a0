/** Where the CLI writes: injected so tests run commands in-process and read what they print. */
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  readonly isTty: boolean;
}

export const PROCESS_IO: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  isTty: process.stdout.isTTY === true,
};

export function bufferIo(): CliIo & { readonly lines: string[]; readonly errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), isTty: false };
}
