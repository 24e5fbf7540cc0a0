import { KeeperError, isKeeperError } from '../errors.js';

/**
 * Docker image references, parsed and normalised the way github.com/distribution/reference does
 * (`ParseDockerRef`): `[domain[:port]/]path-component[/path-component...][:tag][@digest]`.
 *
 * Parsing is hand-split rather than one big regex: each piece is checked by a small anchored regex
 * whose shape cannot backtrack catastrophically, and the input length is capped before any regex
 * runs, so hostile input fails fast.
 */
export interface ImageReference {
  /** Registry host with optional port; 'docker.io' when the input names none. */
  readonly domain: string;
  /** Repository path; 'library/' is prefixed for single-component Docker Hub names. */
  readonly path: string;
  /** The tag as written; kept even when a digest is present, though `normalized` drops it. */
  readonly tag?: string;
  /** `algorithm:encoded`, e.g. 'sha256:<64 lowercase hex>'. */
  readonly digest?: string;
  /** `domain/path`. */
  readonly repository: string;
  /** Identity key: `repository@digest` when digested, else `repository:tag` (tag defaults to 'latest'). */
  readonly normalized: string;
}

/** Either a reference string or an already parsed reference. */
export type ReferenceLike = string | ImageReference;

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const DEFAULT_TAG = 'latest';
const LOCALHOST = 'localhost';

/** distribution's NameTotalLengthMax, applied to the normalised `domain/path`. */
const MAX_REPOSITORY_LENGTH = 255;
const MAX_TAG_LENGTH = 128;
/**
 * Hard cap checked before anything else. Comfortably above the longest valid reference
 * (255-char name, 128-char tag, sha512 digest) so it only ever rejects garbage.
 */
const MAX_REFERENCE_LENGTH = 1024;
const MAX_QUOTED_LENGTH = 80;

// Each pattern is anchored and every repetition is separated by a character class it cannot
// share with its neighbour, so matching is linear.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const IPV6_BODY = /^[a-fA-F0-9:]+$/;
const PORT = /^[0-9]+$/;
const TAG = /^\w[\w.-]*$/;
const DIGEST_ALGORITHM = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$/;
const DIGEST_ENCODED = /^[a-zA-Z0-9=_-]+$/;
const MIN_DIGEST_ENCODED_LENGTH = 32;
const IMAGE_ID = /^[a-f0-9]{64}$/;
const LOWER_HEX = /^[a-f0-9]+$/;

/** Algorithms whose encoding is fixed (OCI image-spec / go-digest): lowercase hex of this length. */
const HEX_DIGEST_LENGTHS: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };

/**
 * Parsed references are immutable, and the planner asks about the same few hundred names on every
 * pass: a bounded cache keeps planning linear without re-running the grammar.
 */
const CACHE_LIMIT = 100_000;
const cache = new Map<string, ImageReference>();

/** Parses and normalises a reference. Throws KeeperError('INVALID_REFERENCE') on invalid input. */
export function parseReference(input: string): ImageReference {
  const hit = typeof input === 'string' ? cache.get(input) : undefined;
  if (hit) return hit;
  const parsed = parseUncached(input);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(input, parsed);
  return parsed;
}

function parseUncached(input: string): ImageReference {
  if (typeof input !== 'string') {
    throw new KeeperError(
      'INVALID_REFERENCE',
      `invalid image reference: expected a string, got ${typeof input}`,
      {
        // Not String(input): a hostile object's toString could throw or be huge.
        details: { inputType: typeof input },
      },
    );
  }
  const fail = (reason: string): never => {
    throw invalid(input, reason);
  };

  if (input.length === 0) fail('reference is empty');
  if (input.length > MAX_REFERENCE_LENGTH) {
    fail(`reference is too long (${input.length} characters, at most ${MAX_REFERENCE_LENGTH})`);
  }
  const badChar = findBadCharacter(input);
  if (badChar !== undefined) fail(badChar);

  const at = input.indexOf('@');
  if (at !== input.lastIndexOf('@')) fail("reference contains more than one '@'");
  const namePart = at === -1 ? input : input.slice(0, at);
  const digest = at === -1 ? undefined : input.slice(at + 1);
  if (namePart.length === 0) fail("reference has no repository name before '@'");
  if (digest !== undefined) {
    const digestProblem = checkDigest(digest);
    if (digestProblem !== undefined) fail(digestProblem);
  }

  // distribution refuses these so that a name can never be confused with an image ID.
  if (IMAGE_ID.test(input)) fail('a 64-character hex string is an image ID, not a repository name');

  const { domain, remainder } = splitDomain(namePart);
  if (domain !== DEFAULT_DOMAIN) {
    const domainProblem = checkDomain(domain);
    if (domainProblem !== undefined) fail(domainProblem);
  }

  const colon = remainder.indexOf(':');
  const path = colon === -1 ? remainder : remainder.slice(0, colon);
  const tag = colon === -1 ? undefined : remainder.slice(colon + 1);

  if (path.toLowerCase() !== path) fail(`repository name must be lowercase (${q(path)})`);
  const pathProblem = checkPath(path);
  if (pathProblem !== undefined) fail(pathProblem);
  if (tag !== undefined) {
    const tagProblem = checkTag(tag);
    if (tagProblem !== undefined) fail(tagProblem);
  }

  const repository = `${domain}/${path}`;
  if (repository.length > MAX_REPOSITORY_LENGTH) {
    fail(`repository name is too long (${repository.length} characters, at most ${MAX_REPOSITORY_LENGTH})`);
  }

  // Like the engine's RepoDigests: once a digest pins the content, the tag is not identity.
  const normalized = digest !== undefined ? `${repository}@${digest}` : `${repository}:${tag ?? DEFAULT_TAG}`;
  return Object.freeze({
    domain,
    path,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
    repository,
    normalized,
  });
}

/** Like parseReference but returns the error instead of throwing it. */
export function tryParseReference(input: string): ImageReference | KeeperError {
  try {
    return parseReference(input);
  } catch (error) {
    if (isKeeperError(error, 'INVALID_REFERENCE')) return error;
    throw error;
  }
}

/** The identity key of a reference. Throws INVALID_REFERENCE on invalid input. */
export function normalizeReference(ref: ReferenceLike): string {
  return toReference(ref).normalized;
}

/** `domain/path`. Throws INVALID_REFERENCE on invalid input. */
export function repositoryOf(ref: ReferenceLike): string {
  return toReference(ref).repository;
}

/** The digest, if the reference pins one. Throws INVALID_REFERENCE on invalid input. */
export function digestOf(ref: ReferenceLike): string | undefined {
  return toReference(ref).digest;
}

/** Whether the reference pins a digest. Throws INVALID_REFERENCE on invalid input (it is not "false"). */
export function isDigestReference(ref: ReferenceLike): boolean {
  return toReference(ref).digest !== undefined;
}

/**
 * Image identity. A digest names content, so two digested references are the same image exactly when
 * the digests match, whatever repository they were pulled through. Undigested references are the same
 * image when their normalised names match. A digested and an undigested reference are never the same:
 * we cannot know what the tag points at, and answering "false" keeps this an equivalence relation.
 */
export function sameImage(a: ReferenceLike, b: ReferenceLike): boolean {
  const left = toReference(a);
  const right = toReference(b);
  if (left.digest !== undefined || right.digest !== undefined) return left.digest === right.digest;
  return left.normalized === right.normalized;
}

function toReference(ref: ReferenceLike): ImageReference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}

/** distribution's splitDockerDomain: which leading component is a registry, plus Docker Hub defaults. */
function splitDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  let domain = DEFAULT_DOMAIN;
  let remainder = name;
  if (slash !== -1) {
    const first = name.slice(0, slash);
    // Uppercase is never allowed in a path, so distribution takes an uppercase first component as a host.
    const isDomain =
      first === LOCALHOST ||
      first === LEGACY_DEFAULT_DOMAIN ||
      first.includes('.') ||
      first.includes(':') ||
      first.toLowerCase() !== first;
    if (isDomain) {
      domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
      remainder = name.slice(slash + 1);
    }
  }
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/** Printable ASCII only; names the first offending character so the message is actionable. */
function findBadCharacter(input: string): string | undefined {
  const index = input.search(/[^\x21-\x7e]/);
  if (index === -1) return undefined;
  const code = input.codePointAt(index) ?? 0;
  const where = `at index ${index}`;
  if (/\s/.test(String.fromCodePoint(code)))
    return `reference contains whitespace (${codePointName(code)}) ${where}`;
  if (code < 0x20 || (code >= 0x7f && code < 0xa0)) {
    return `reference contains a control character (${codePointName(code)}) ${where}`;
  }
  return `reference contains a non-ASCII character (${codePointName(code)}) ${where}`;
}

function codePointName(code: number): string {
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

function checkDomain(domain: string): string | undefined {
  let host: string;
  let port: string | undefined;
  if (domain.startsWith('[')) {
    const close = domain.indexOf(']');
    if (close === -1) return `IPv6 address in domain ${q(domain)} has no closing ']'`;
    host = domain.slice(0, close + 1);
    const after = domain.slice(close + 1);
    if (!IPV6_BODY.test(domain.slice(1, close))) return `invalid IPv6 address ${q(host)}`;
    if (after !== '') {
      if (!after.startsWith(':')) return `unexpected ${q(after)} after IPv6 address in domain ${q(domain)}`;
      port = after.slice(1);
    }
  } else {
    const colon = domain.indexOf(':');
    host = colon === -1 ? domain : domain.slice(0, colon);
    port = colon === -1 ? undefined : domain.slice(colon + 1);
    if (host === '') return `domain ${q(domain)} has an empty host`;
    for (const label of host.split('.')) {
      if (label === '') return `domain ${q(host)} has an empty label (leading, trailing or doubled '.')`;
      if (!DOMAIN_LABEL.test(label)) return `invalid domain label ${q(label)} in ${q(host)}`;
    }
  }
  if (port !== undefined) return checkPort(port, domain);
  return undefined;
}

function checkPort(port: string, domain: string): string | undefined {
  if (port === '') return `domain ${q(domain)} has ':' but no port`;
  // Leading zeros would give one registry two identity keys ('reg:5000' and 'reg:05000').
  if (!PORT.test(port) || port.length > 5 || port.startsWith('0')) {
    return `port ${q(port)} in domain ${q(domain)} must be a number from 1 to 65535 without leading zeros`;
  }
  const value = Number(port);
  if (value < 1 || value > 65535) return `port ${port} in domain ${q(domain)} must be from 1 to 65535`;
  return undefined;
}

function checkPath(path: string): string | undefined {
  for (const component of path.split('/')) {
    if (component === '')
      return `repository path ${q(path)} has an empty component (leading, trailing or '//')`;
    if (!PATH_COMPONENT.test(component)) {
      return `invalid path component ${q(component)}: use a-z and 0-9 joined by '.', '_', '__' or '-'`;
    }
  }
  return undefined;
}

function checkTag(tag: string): string | undefined {
  if (tag === '') return "':' is not followed by a tag";
  if (tag.length > MAX_TAG_LENGTH)
    return `tag is too long (${tag.length} characters, at most ${MAX_TAG_LENGTH})`;
  if (!TAG.test(tag))
    return `invalid tag ${q(tag)}: use A-Z, a-z, 0-9, '_', '.' and '-', not starting with '.' or '-'`;
  return undefined;
}

function checkDigest(digest: string): string | undefined {
  if (digest === '') return "'@' is not followed by a digest";
  const colon = digest.indexOf(':');
  if (colon === -1) return `digest ${q(digest)} is not of the form algorithm:encoded`;
  const algorithm = digest.slice(0, colon);
  const encoded = digest.slice(colon + 1);
  if (!DIGEST_ALGORITHM.test(algorithm)) return `invalid digest algorithm ${q(algorithm)}`;
  const hexLength = HEX_DIGEST_LENGTHS[algorithm];
  if (hexLength !== undefined) {
    if (encoded.length !== hexLength || !LOWER_HEX.test(encoded)) {
      return `${algorithm} digest must be exactly ${hexLength} lowercase hex characters (got ${encoded.length} characters)`;
    }
    return undefined;
  }
  if (!DIGEST_ENCODED.test(encoded)) return `invalid characters in digest ${q(digest)}`;
  if (encoded.length < MIN_DIGEST_ENCODED_LENGTH) {
    return `digest ${q(digest)} is too short (at least ${MIN_DIGEST_ENCODED_LENGTH} encoded characters)`;
  }
  return undefined;
}

function invalid(input: string, reason: string): KeeperError {
  const truncated = input.length > MAX_REFERENCE_LENGTH;
  return new KeeperError('INVALID_REFERENCE', `invalid image reference ${quote(input)}: ${reason}`, {
    details: {
      input: truncated ? input.slice(0, MAX_REFERENCE_LENGTH) : input,
      ...(truncated ? { inputLength: input.length } : {}),
    },
  });
}

/** Quotes at most 80 characters on one line: anything outside printable ASCII is escaped. */
function quote(input: string): string {
  const head = input.slice(0, MAX_QUOTED_LENGTH);
  let body = '';
  for (let i = 0; i < head.length; i++) {
    const code = head.charCodeAt(i);
    if (code === 0x22 || code === 0x5c) body += `\\${head[i]}`;
    else if (code >= 0x20 && code <= 0x7e) body += head[i];
    else body += `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return input.length > MAX_QUOTED_LENGTH ? `"${body}..." (${input.length} characters)` : `"${body}"`;
}

/** Quotes a piece of an already printable-ASCII input inside a message, clipped to keep it short. */
function q(fragment: string): string {
  const max = 40;
  return `'${fragment.length > max ? `${fragment.slice(0, max)}...` : fragment}'`;
}
