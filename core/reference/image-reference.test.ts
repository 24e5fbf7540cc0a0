import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { KeeperError, isKeeperError } from '../errors.js';
import {
  digestOf,
  isDigestReference,
  normalizeReference,
  parseReference,
  repositoryOf,
  sameImage,
  tryParseReference,
  type ImageReference,
} from './image-reference.js';

const D1 = 'sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa';
const D2 = 'sha256:' + 'a'.repeat(64);
const D3 = 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const SHA512 = 'sha512:' + 'f0'.repeat(64);
const MULTIHASH = 'multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8';
const BALENA_PATH = 'v2/8f4a6c2e1b9d7a3f5e0c4b8a2d6f1e9c';

/** Runs `parse` and returns the thrown KeeperError, failing the test if it did not throw one. */
function rejection(input: string): KeeperError {
  try {
    parseReference(input);
  } catch (error) {
    expect(isKeeperError(error, 'INVALID_REFERENCE')).toBe(true);
    return error as KeeperError;
  }
  throw new Error(`expected ${JSON.stringify(input.slice(0, 80))} to be rejected`);
}

describe('parseReference: valid references', () => {
  const valid: readonly (readonly [string, string])[] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
    ['index.docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/balena/app:v1', 'docker.io/balena/app:v1'],
    ['balena/open-balena-api:v1.2.3', 'docker.io/balena/open-balena-api:v1.2.3'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b:v1', 'localhost:5000/a/b:v1'],
    [`127.0.0.1:5000/app/main@${D1}`, `127.0.0.1:5000/app/main@${D1}`],
    [`registry2.balena-cloud.com/${BALENA_PATH}@${D1}`, `registry2.balena-cloud.com/${BALENA_PATH}@${D1}`],
    [`reg:5000/x:tag@${D1}`, `reg:5000/x@${D1}`],
    [`busybox:latest@${D1}`, `docker.io/library/busybox@${D1}`],
    ['[::1]:5000/a:b', '[::1]:5000/a:b'],
    ['[2001:db8::1]/app', '[2001:db8::1]/app:latest'],
    ['reg:65535/a', 'reg:65535/a:latest'],
    ['reg:1/a', 'reg:1/a:latest'],
    // Domains keep their case, as in distribution.
    ['Registry.Example.com/app', 'Registry.Example.com/app:latest'],
    // distribution: an uppercase first component cannot be a path, so it is a host.
    ['Foo/bar', 'Foo/bar:latest'],
    // distribution quirks: without a '/', nothing is a domain.
    ['localhost:5000', 'docker.io/library/localhost:5000'],
    ['example.com', 'docker.io/library/example.com:latest'],
    ['a__b/c--d/e.f_g:T_a.g-1', 'docker.io/a__b/c--d/e.f_g:T_a.g-1'],
    ['a', 'docker.io/library/a:latest'],
    [`busybox@${SHA512}`, `docker.io/library/busybox@${SHA512}`],
    [`busybox@${MULTIHASH}`, `docker.io/library/busybox@${MULTIHASH}`],
    ['busybox:' + 'T'.repeat(128), 'docker.io/library/busybox:' + 'T'.repeat(128)],
    // docker.io/library/ is 18 characters: 18 + 237 = 255, the limit.
    ['a'.repeat(237), `docker.io/library/${'a'.repeat(237)}:latest`],
  ];

  it.each(valid)('%s normalises to %s', (input, expected) => {
    expect(normalizeReference(input)).toBe(expected);
    expect(parseReference(input).normalized).toBe(expected);
  });

  it('splits a tagged and digested reference into its fields, keeping the tag but not in `normalized`', () => {
    expect(parseReference(`reg:5000/x:tag@${D1}`)).toEqual({
      domain: 'reg:5000',
      path: 'x',
      tag: 'tag',
      digest: D1,
      repository: 'reg:5000/x',
      normalized: `reg:5000/x@${D1}`,
    });
  });

  it('leaves `tag` and `digest` absent when the input has none', () => {
    const ref = parseReference('busybox');
    expect(ref).toEqual({
      domain: 'docker.io',
      path: 'library/busybox',
      repository: 'docker.io/library/busybox',
      normalized: 'docker.io/library/busybox:latest',
    });
    expect('tag' in ref).toBe(false);
    expect('digest' in ref).toBe(false);
  });

  it('parses IPv6 domains with ports', () => {
    const ref = parseReference('[::1]:5000/a:b');
    expect(ref.domain).toBe('[::1]:5000');
    expect(ref.path).toBe('a');
    expect(ref.tag).toBe('b');
  });
});

describe('parseReference: invalid references', () => {
  const hex = (n: number): string => 'a'.repeat(n);
  const invalid: readonly (readonly [string, string, string])[] = [
    ['empty string', '', 'empty'],
    ['a space', ' ', 'whitespace'],
    ['leading space', ' busybox', 'whitespace'],
    ['trailing newline', 'busybox\n', 'whitespace'],
    ['a tab', 'busy\tbox', 'whitespace'],
    ['a no-break space', 'busybox\u00a0', 'whitespace'],
    ['NUL', 'busy\0box', 'control character (U+0000)'],
    ['DEL', 'busybox\x7f', 'control character'],
    ['a C1 control', 'busybox\u0085x', 'U+0085'],
    ['zero-width space', 'busy\u200bbox', 'non-ASCII'],
    ['Armenian lookalike of u', 'b\u057dsybox', 'non-ASCII character (U+057D)'],
    ['fullwidth b', '\uff42usybox', 'non-ASCII'],
    ['emoji', 'busybox:\u{1f600}', 'U+1F600'],
    ['two @', `a@${D1}@${D2}`, "more than one '@'"],
    ['@ without digest', 'busybox@', "'@' is not followed by a digest"],
    ['latest@', 'latest@', "'@' is not followed by a digest"],
    ['tag then bare @', 'busybox:latest@', "'@' is not followed by a digest"],
    ['nothing before @', `@${D1}`, 'no repository name'],
    ['sha256 with 63 hex', `busybox@sha256:${hex(63)}`, 'exactly 64 lowercase hex'],
    ['sha256 with 65 hex', `busybox@sha256:${hex(65)}`, 'exactly 64 lowercase hex'],
    ['sha256 with uppercase hex', `busybox@sha256:${'A'.repeat(64)}`, 'exactly 64 lowercase hex'],
    ['sha256 with non-hex', `busybox@sha256:${'g'.repeat(64)}`, 'exactly 64 lowercase hex'],
    ['sha512 with 64 hex', `busybox@sha512:${hex(64)}`, 'exactly 128 lowercase hex'],
    ['tag after digest', `busybox@${D1}:latest`, 'exactly 64 lowercase hex'],
    ['digest without algorithm', `busybox@${hex(64)}`, 'algorithm:encoded'],
    ['bare sha256:', 'busybox@sha256:', 'exactly 64'],
    ['uppercase algorithm', `busybox@SHA256:${hex(64)}`, "invalid digest algorithm 'SHA256'"],
    ['short unknown digest', 'busybox@md5:abc', 'too short'],
    ['31-char unknown digest', `busybox@foo:${'x'.repeat(31)}`, 'too short'],
    ['bad characters in unknown digest', `busybox@foo:${'x'.repeat(32)}!`, 'invalid characters in digest'],
    ['port 0', 'localhost:0/a', 'from 1 to 65535'],
    ['port 70000', 'localhost:70000/a', 'from 1 to 65535'],
    ['port with leading zero', 'localhost:05000/a', 'without leading zeros'],
    ['port with 6 digits', 'localhost:123456/a', 'from 1 to 65535'],
    ['non-numeric port', 'localhost:50a/a', "port '50a'"],
    ['two ports', 'reg:5000:6000/a', "port '5000:6000'"],
    ['colon with no port', 'localhost:/a', 'no port'],
    ['tag in the wrong place', 'busybox:tag/x', "port 'tag'"],
    ['unclosed IPv6', '[::1/a', "no closing ']'"],
    ['bad IPv6', '[::g]:5000/a', 'invalid IPv6 address'],
    ['junk after IPv6', '[::1]5000/a', 'after IPv6 address'],
    ['domain label starting with -', '-reg.com/a', "invalid domain label '-reg'"],
    ['domain label with _', 'reg_x.com/a', "invalid domain label 'reg_x'"],
    ['doubled dot in domain', 'reg..com/a', 'empty label'],
    ['leading dot in domain', '.reg.com/a', 'empty label'],
    ['empty host with port', ':5000/a', 'empty host'],
    ['leading slash', '/busybox', 'empty component'],
    ['trailing slash', 'busybox/', 'empty component'],
    ['double slash', 'a//b', 'empty component'],
    ['domain only', 'localhost/', 'empty component'],
    ['dot-dot component', 'a/../b', "invalid path component '..'"],
    ['dot-dot inside a component', 'a..b', "invalid path component 'a..b'"],
    ['leading separator', '-busybox', "invalid path component '-busybox'"],
    ['trailing separator', 'busybox-', "invalid path component 'busybox-'"],
    ['leading underscore', '_a', 'invalid path component'],
    ['triple underscore', 'a___b', 'invalid path component'],
    ['mixed separators', 'a.-b', 'invalid path component'],
    ['punctuation', 'busy#box', 'invalid path component'],
    ['uppercase path after domain', 'docker.io/Busybox', 'repository name must be lowercase'],
    ['uppercase single name', 'BUSYBOX', 'repository name must be lowercase'],
    ['uppercase second component', 'balena/App', 'repository name must be lowercase'],
    ['empty tag', 'busybox:', "':' is not followed by a tag"],
    ['tag too long', 'busybox:' + 'a'.repeat(129), 'tag is too long (129 characters, at most 128)'],
    ['tag starting with .', 'busybox:.tag', "invalid tag '.tag'"],
    ['tag starting with -', 'busybox:-tag', "invalid tag '-tag'"],
    ['two tags', 'busybox:a:b', "invalid tag 'a:b'"],
    ['repository too long', 'a'.repeat(238), 'repository name is too long (256 characters, at most 255)'],
    ['bare image ID', hex(64), 'image ID'],
    ['10 MB string', 'x'.repeat(10_000_000), 'too long (10000000 characters'],
    ['1,000,000 valid-looking characters', 'a/'.repeat(500_000), 'too long'],
  ];

  it.each(invalid)('rejects %s', (_name, input, reason) => {
    const error = rejection(input);
    expect(error.message).toContain(reason);
    expect(error.message.startsWith('invalid image reference "')).toBe(true);
    expect(error.message).not.toMatch(/[\n\r\u2028\u2029]/);
  });

  it('quotes at most 80 characters of the input and escapes non-printable ones', () => {
    const long = rejection('x'.repeat(200) + '!');
    expect(long.message).toContain(`"${'x'.repeat(80)}..." (201 characters)`);
    expect(long.message.startsWith(`invalid image reference "${'x'.repeat(80)}..."`)).toBe(true);
    // Fragments of the input quoted in the reason are clipped too.
    expect(long.message).not.toContain('x'.repeat(81));
    expect(long.message.length).toBeLessThan(300);

    const control = rejection('busy\0box\n');
    expect(control.message).toContain('"busy\\u0000box\\u000a"');
  });

  it('keeps the input in details, capped for huge inputs', () => {
    expect(rejection('busybox@').details).toEqual({ input: 'busybox@' });
    const huge = rejection('x'.repeat(10_000_000));
    expect(huge.details['inputLength']).toBe(10_000_000);
    expect((huge.details['input'] as string).length).toBeLessThanOrEqual(1024);
  });

  it('rejects a non-string at runtime with INVALID_REFERENCE', () => {
    const error = rejection(undefined as unknown as string);
    expect(error.message).toContain('expected a string');
  });

  it('rejects inputs that stress regex backtracking (just under the length cap)', () => {
    for (const input of [
      'a-'.repeat(400) + '!',
      'a'.repeat(1000) + '_',
      'a.'.repeat(500),
      'a'.repeat(100) + ':' + 'b-'.repeat(400) + '\u0000',
      'a.b/' + 'c__'.repeat(300),
      `x@${'sha256.'.repeat(100)}:abc`,
      '[' + ':'.repeat(1000),
    ]) {
      expect(input.length).toBeLessThanOrEqual(1024);
      rejection(input);
    }
  });
});

describe('helpers', () => {
  it('tryParseReference returns the error instead of throwing', () => {
    const result = tryParseReference('busybox@');
    expect(result).toBeInstanceOf(KeeperError);
    expect(isKeeperError(result, 'INVALID_REFERENCE')).toBe(true);
    const ok = tryParseReference('busybox');
    expect(isKeeperError(ok)).toBe(false);
    expect((ok as ImageReference).normalized).toBe('docker.io/library/busybox:latest');
  });

  it('repositoryOf, digestOf and isDigestReference read the parsed reference', () => {
    expect(repositoryOf('busybox:1')).toBe('docker.io/library/busybox');
    expect(repositoryOf(`localhost:5000/a@${D1}`)).toBe('localhost:5000/a');
    expect(digestOf(`busybox:1@${D1}`)).toBe(D1);
    expect(digestOf('busybox:1')).toBeUndefined();
    expect(isDigestReference(`busybox@${D1}`)).toBe(true);
    expect(isDigestReference('busybox:1')).toBe(false);
  });

  it('helpers accept an already parsed reference', () => {
    const ref = parseReference(`reg:5000/x:tag@${D1}`);
    expect(normalizeReference(ref)).toBe(`reg:5000/x@${D1}`);
    expect(repositoryOf(ref)).toBe('reg:5000/x');
    expect(digestOf(ref)).toBe(D1);
    expect(isDigestReference(ref)).toBe(true);
    expect(sameImage(ref, `other.io/y@${D1}`)).toBe(true);
  });

  it('helpers throw INVALID_REFERENCE on invalid strings rather than answering', () => {
    for (const call of [
      () => normalizeReference('A//'),
      () => repositoryOf('A//'),
      () => digestOf('A//'),
      () => isDigestReference('A//'),
      () => sameImage('busybox', 'A//'),
    ]) {
      expect(call).toThrow(KeeperError);
    }
  });

  it('sameImage compares digests when both have one, names when neither does, and is false otherwise', () => {
    expect(sameImage('busybox', 'docker.io/library/busybox:latest')).toBe(true);
    expect(sameImage('index.docker.io/busybox:1', 'busybox:1')).toBe(true);
    expect(sameImage('busybox:1', 'busybox:2')).toBe(false);
    expect(sameImage(`busybox@${D1}`, `registry2.balena-cloud.com/${BALENA_PATH}:v9@${D1}`)).toBe(true);
    expect(sameImage(`busybox@${D1}`, `busybox@${D2}`)).toBe(false);
    expect(sameImage(`busybox:latest@${D1}`, 'busybox:latest')).toBe(false);
    expect(sameImage('busybox:latest', `busybox:latest@${D1}`)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Generators

const alnum = fc.string({ unit: fc.constantFrom(...'abz09'), minLength: 1, maxLength: 4 });
const separator = fc.constantFrom('.', '_', '__', '-', '---');
const pathComponent = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 2 }))
  .map(([head, rest]) => head + rest.map(([sep, part]) => sep + part).join(''));
const pathArb = fc.array(pathComponent, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/'));
const domainArb = fc.constantFrom(
  undefined,
  'docker.io',
  'index.docker.io',
  'localhost',
  'localhost:5000',
  'reg.example.com',
  '127.0.0.1:5000',
  '[::1]:5000',
  'Registry.Example.com',
  'reg:65535',
);
const tagArb = fc.option(
  fc
    .tuple(fc.constantFrom(...'aZ9_'), fc.string({ unit: fc.constantFrom(...'aZ9_.-'), maxLength: 8 }))
    .map(([first, rest]) => first + rest),
  { nil: undefined },
);
const hex64 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 });
const someDigestArb = fc.oneof(
  fc.constantFrom(D1, D2, D3, SHA512, MULTIHASH),
  hex64.map((h) => `sha256:${h}`),
);
const digestArb = fc.option(someDigestArb, { nil: undefined });

function build(domain: string | undefined, path: string, tag?: string, digest?: string): string {
  return (
    (domain === undefined ? '' : `${domain}/`) +
    path +
    (tag === undefined ? '' : `:${tag}`) +
    (digest === undefined ? '' : `@${digest}`)
  );
}

/** Without an explicit domain, a first component containing '.' would itself be read as a domain. */
const repositoryArb = fc
  .tuple(domainArb, pathArb)
  .filter(
    ([domain, path]) => domain !== undefined || !path.includes('/') || !path.split('/')[0]!.includes('.'),
  )
  .map(([domain, path]) => build(domain, path));

const referenceArb = fc
  .tuple(repositoryArb, tagArb, digestArb)
  .map(([repository, tag, digest]) => build(undefined, repository, tag, digest));

type Mutation =
  | { readonly kind: 'insert'; readonly at: number; readonly text: string }
  | { readonly kind: 'delete'; readonly at: number; readonly count: number }
  | { readonly kind: 'replace'; readonly at: number; readonly text: string }
  | { readonly kind: 'double' };

const nastyText = fc.constantFrom(
  '@',
  ':',
  '/',
  '.',
  '..',
  '//',
  '-',
  '_',
  '__',
  'A',
  ' ',
  '\0',
  '\n',
  '\u00e9',
  '\uff42',
  '\u200b',
  '\u{1f600}',
  '\ud800',
  '[',
  ']',
  ':0',
  ':70000',
  '@sha256:',
  'sha256:',
  'a'.repeat(64),
  'x'.repeat(300),
);
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: nastyText }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: nastyText }),
  fc.constant({ kind: 'double' as const }),
);

function mutate(input: string, mutation: Mutation): string {
  if (mutation.kind === 'double') return input + input;
  const at = mutation.at % (input.length + 1);
  switch (mutation.kind) {
    case 'insert':
      return input.slice(0, at) + mutation.text + input.slice(at);
    case 'delete':
      return input.slice(0, at) + input.slice(at + mutation.count);
    case 'replace':
      return input.slice(0, at) + mutation.text + input.slice(at + 1);
  }
}

const nearValidArb = fc
  .tuple(referenceArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
  .map(([input, mutations]) => mutations.reduce(mutate, input));

// ---------------------------------------------------------------------------------------------

describe('properties', () => {
  it('generated references are valid (sanity check for the generators below)', () => {
    fc.assert(
      fc.property(referenceArb, (input) => {
        expect(() => parseReference(input)).not.toThrow();
      }),
    );
  });

  it('normalisation is idempotent', () => {
    fc.assert(
      fc.property(referenceArb, (input) => {
        const ref = parseReference(input);
        const again = parseReference(ref.normalized);
        expect(again.normalized).toBe(ref.normalized);
        expect(normalizeReference(normalizeReference(input))).toBe(normalizeReference(input));
        expect(again.repository).toBe(ref.repository);
        expect(again.digest).toBe(ref.digest);
      }),
    );
  });

  it('parse never throws anything but a KeeperError INVALID_REFERENCE on arbitrary strings', () => {
    // fast-check 4 dropped fullUnicodeString; unit 'binary' is its replacement (any code point, lone surrogates included).
    const anyString = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom(...'aA0:/@.-_[]'), maxLength: 40 }),
      nearValidArb,
    );
    fc.assert(
      fc.property(anyString, (input) => {
        let ref: ImageReference;
        try {
          ref = parseReference(input);
        } catch (error) {
          expect(isKeeperError(error, 'INVALID_REFERENCE')).toBe(true);
          expect((error as KeeperError).message).not.toMatch(/[\n\r\u2028\u2029]/);
          return;
        }
        // Whatever is accepted must normalise to something that is itself accepted, unchanged.
        expect(normalizeReference(ref.normalized)).toBe(ref.normalized);
      }),
      { numRuns: 2000 },
    );
  });

  it('sameImage is an equivalence relation on generated references', () => {
    // Small pools, so that related triples are common rather than vanishingly rare.
    const smallRef = fc
      .tuple(
        fc.constantFrom(undefined, 'docker.io', 'index.docker.io', 'localhost:5000'),
        fc.constantFrom('busybox', 'library/busybox', 'a/b'),
        fc.constantFrom(undefined, 'latest', 'v1'),
        fc.constantFrom(undefined, D1, D2),
      )
      .map(([domain, path, tag, digest]) => build(domain, path, tag, digest));
    fc.assert(
      fc.property(smallRef, smallRef, smallRef, (a, b, c) => {
        expect(sameImage(a, a)).toBe(true);
        expect(sameImage(a, b)).toBe(sameImage(b, a));
        if (sameImage(a, b) && sameImage(b, c)) expect(sameImage(a, c)).toBe(true);
        expect(sameImage(parseReference(a), parseReference(b))).toBe(sameImage(a, b));
      }),
      { numRuns: 500 },
    );
  });

  it('two references with the same digest are the same image whatever the repository', () => {
    fc.assert(
      fc.property(repositoryArb, repositoryArb, tagArb, tagArb, someDigestArb, (r1, r2, t1, t2, digest) => {
        expect(sameImage(build(undefined, r1, t1, digest), build(undefined, r2, t2, digest))).toBe(true);
      }),
    );
  });

  it('a different digest in the same repository is a different image', () => {
    fc.assert(
      fc.property(repositoryArb, tagArb, hex64, hex64, (repository, tag, h1, h2) => {
        fc.pre(h1 !== h2);
        expect(
          sameImage(
            build(undefined, repository, tag, `sha256:${h1}`),
            build(undefined, repository, tag, `sha256:${h2}`),
          ),
        ).toBe(false);
      }),
    );
  });
});
