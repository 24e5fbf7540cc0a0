/**
 * Tiny runnable images built byte by byte (no docker build, no base image, nothing from any hub) and
 * pushed straight to the private registry over its HTTP API. Every layer is a deterministic tar of
 * `/ik/pause` (a 129-byte static binary that sleeps in pause(2)) plus one seed-derived file, so:
 *  - the same layer key gives the same blob in every image, at any position: layer sharing is exact;
 *  - `idLabel` goes into the config: equal labels and layers give one image ID, different labels two;
 *  - `manifestLabel` goes into the manifest's annotations: two images with one image ID can still have
 *    two manifest digests (as two repositories built from one context do).
 * The config's StopSignal is SIGKILL: the pause binary runs as PID 1, which ignores SIGTERM.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { deterministicBytes } from './deterministic-bytes.js';

export interface HandBuiltLayer {
  /** Seed of the layer's payload: equal keys (and sizes) are the same layer. */
  readonly key: string;
  /** Payload bytes (the pause binary and tar headers come on top). */
  readonly bytes: number;
}

export interface HandBuiltImageSpec {
  /** Full repository with the registry host, e.g. "127.0.0.1:PORT/diff/app/main". */
  readonly repository: string;
  readonly layers: readonly HandBuiltLayer[];
  readonly idLabel: string;
  readonly manifestLabel: string;
  /** Tags under which the registry also serves the manifest. */
  readonly tags?: readonly string[];
}

export interface PushedLayer {
  /** Digest of the compressed blob, as the registry serves it. */
  readonly digest: string;
  /** Digest of the uncompressed tar: what the engine reports in RootFS.Layers. */
  readonly diffId: string;
  /** Compressed size in bytes. */
  readonly size: number;
}

export interface PushedImage {
  readonly repository: string;
  /** Manifest digest. */
  readonly digest: string;
  /** `repository@digest`. */
  readonly digestRef: string;
  /** Config digest: the engine's image ID. */
  readonly imageId: string;
  readonly layers: readonly PushedLayer[];
}

const FIXED_MTIME = Date.UTC(2024, 0, 1) / 1000;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface BuiltLayer extends PushedLayer {
  /** The compressed blob the registry serves. */
  readonly blob: Buffer;
  /** The uncompressed tar (what `docker load` takes). */
  readonly tar: Buffer;
}

/** Built layers by key and size: big payloads are hashed and compressed once per process. */
const layerCache = new Map<string, BuiltLayer>();

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** An image's config and layers, not yet anywhere: push it, or load it as an archive. */
export interface HandBuiltImage {
  readonly config: Buffer;
  /** Config digest: the engine's image ID. */
  readonly imageId: string;
  readonly layers: readonly BuiltLayer[];
}

export function handBuiltImage(layers: readonly HandBuiltLayer[], idLabel: string): HandBuiltImage {
  const built = layers.map(buildLayer);
  const config = Buffer.from(
    JSON.stringify({
      architecture: engineArchitecture(),
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: {
        Cmd: ['/ik/pause'],
        StopSignal: 'SIGKILL',
        Labels: { 'io.image-keeper.hand-built': idLabel },
      },
      rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) },
    }),
  );
  return { config, imageId: sha256(config), layers: built };
}

/** Builds the image, uploads the blobs the registry lacks, and puts the manifest by digest and tags. */
export async function pushHandBuiltImage(
  registryHost: string,
  spec: HandBuiltImageSpec,
): Promise<PushedImage> {
  const base = `http://${registryHost}/v2/${repositoryPath(registryHost, spec.repository)}`;
  const { config, imageId, layers } = handBuiltImage(spec.layers, spec.idLabel);
  for (const layer of layers) await uploadBlob(base, layer.digest, layer.blob);
  await uploadBlob(base, imageId, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: imageId, size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
      annotations: { 'io.image-keeper.manifest': spec.manifestLabel },
    }),
  );
  const digest = sha256(manifest);
  for (const reference of [digest, ...(spec.tags ?? [])]) {
    const put = await fetch(`${base}/manifests/${reference}`, {
      method: 'PUT',
      headers: { 'content-type': OCI_MANIFEST },
      body: manifest,
    });
    const text = await put.text();
    if (put.status !== 201)
      throw new Error(`PUT manifest ${spec.repository}:${reference}: HTTP ${put.status} ${text}`);
    const served = put.headers.get('docker-content-digest');
    if (served !== digest)
      throw new Error(`${spec.repository}:${reference} stored as ${String(served)}, expected ${digest}`);
  }
  return {
    repository: spec.repository,
    digest,
    digestRef: `${spec.repository}@${digest}`,
    imageId,
    layers: layers.map(({ digest: d, diffId, size }) => ({ digest: d, diffId, size })),
  };
}

/** Stops the registry serving a manifest (and every tag of it); its blobs stay. */
export async function deleteManifest(
  registryHost: string,
  repository: string,
  digest: string,
): Promise<void> {
  const base = `http://${registryHost}/v2/${repositoryPath(registryHost, repository)}`;
  const response = await fetch(`${base}/manifests/${digest}`, { method: 'DELETE' });
  await response.arrayBuffer();
  if (response.status !== 202 && response.status !== 404) {
    throw new Error(`DELETE manifest ${repository}@${digest}: HTTP ${response.status}`);
  }
}

/**
 * The image as a `docker load` archive with the given tags (none: it loads dangling). The only way
 * to have an image on the engine without a digest reference, as a build or a side-load leaves it.
 */
export function loadArchive(image: HandBuiltImage, repoTags: readonly string[]): Buffer {
  const hex = (digest: string): string => digest.slice('sha256:'.length);
  const manifest = [
    {
      Config: `${hex(image.imageId)}.json`,
      RepoTags: repoTags.length > 0 ? repoTags : null,
      Layers: image.layers.map((l) => `${hex(l.diffId)}/layer.tar`),
    },
  ];
  return tarOf([
    { path: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
    { path: `${hex(image.imageId)}.json`, data: image.config },
    ...image.layers.map((l) => ({ path: `${hex(l.diffId)}/layer.tar`, data: l.tar })),
  ]);
}

/** The layer a spec entry stands for (built once per key and size). */
export function builtLayer(layer: HandBuiltLayer): PushedLayer {
  const { digest, diffId, size } = buildLayer(layer);
  return { digest, diffId, size };
}

function buildLayer(layer: HandBuiltLayer): BuiltLayer {
  const cacheKey = `${layer.key}\0${layer.bytes}`;
  const cached = layerCache.get(cacheKey);
  if (cached) return cached;
  const name = createHash('sha256').update(layer.key).digest('hex').slice(0, 32);
  const tar = tarOf([
    { path: 'ik/', dir: true },
    { path: 'ik/pause', data: pauseBinary(), mode: 0o755 },
    { path: 'ik/layers/', dir: true },
    { path: `ik/layers/${name}`, data: deterministicBytes(`hand-built layer:${layer.key}`, layer.bytes) },
  ]);
  // Level 1: the payload is incompressible anyway, and the bench builds ~100 MB of it.
  const blob = gzipSync(tar, { level: 1 });
  const built: BuiltLayer = { digest: sha256(blob), diffId: sha256(tar), size: blob.length, blob, tar };
  layerCache.set(cacheKey, built);
  return built;
}

async function uploadBlob(base: string, digest: string, data: Buffer): Promise<void> {
  const head = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return;
  const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST' });
  await start.arrayBuffer();
  const location = start.headers.get('location');
  if (start.status !== 202 || location === null)
    throw new Error(`POST ${base}/blobs/uploads/: HTTP ${start.status}`);
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`PUT blob ${digest} to ${base}: HTTP ${put.status} ${text}`);
}

function repositoryPath(registryHost: string, repository: string): string {
  if (!repository.startsWith(`${registryHost}/`)) {
    throw new Error(`${repository} is not a repository of the private registry ${registryHost}`);
  }
  return repository.slice(registryHost.length + 1);
}

function engineArchitecture(): string {
  if (process.arch === 'x64') return 'amd64';
  throw new Error(`hand-built images carry an x86-64 pause binary; this is ${process.arch}`);
}

/**
 * A static x86-64 ELF with one loadable segment whose code is `1: mov eax, 34 (pause); syscall; jmp 1b`.
 * It never exits on its own and needs no libc, loader or base image.
 */
export function pauseBinary(): Buffer {
  const code = Buffer.from([0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7]);
  const headerSize = 64 + 56;
  const total = headerSize + code.length;
  const base = 0x400000n;
  const elf = Buffer.alloc(total);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0); // ELF64, little endian, SysV
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + BigInt(headerSize), 24); // entry point
  elf.writeBigUInt64LE(64n, 32); // program header offset
  elf.writeUInt16LE(64, 52); // ELF header size
  elf.writeUInt16LE(56, 54); // program header size
  elf.writeUInt16LE(1, 56); // one program header
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R+X
  elf.writeBigUInt64LE(0n, 72); // file offset
  elf.writeBigUInt64LE(base, 80); // vaddr
  elf.writeBigUInt64LE(base, 88); // paddr
  elf.writeBigUInt64LE(BigInt(total), 96); // filesz
  elf.writeBigUInt64LE(BigInt(total), 104); // memsz
  elf.writeBigUInt64LE(0x1000n, 112); // align
  code.copy(elf, headerSize);
  return elf;
}

interface TarEntry {
  readonly path: string;
  readonly dir?: boolean;
  readonly data?: Buffer;
  readonly mode?: number;
}

/** A ustar archive with fixed owner, mode and mtime: the same entries always give the same bytes. */
function tarOf(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data ?? Buffer.alloc(0);
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string): void => {
      header.write(value, offset, length, 'ascii');
    };
    const octal = (value: number, length: number): string =>
      `${value.toString(8).padStart(length - 1, '0')}\0`;
    field(0, 100, entry.path);
    field(100, 8, octal(entry.mode ?? (entry.dir ? 0o755 : 0o644), 8));
    field(108, 8, octal(0, 8));
    field(116, 8, octal(0, 8));
    field(124, 12, octal(entry.dir ? 0 : data.length, 12));
    field(136, 12, octal(FIXED_MTIME, 12));
    field(148, 8, '        ');
    field(156, 1, entry.dir ? '5' : '0');
    field(257, 6, 'ustar\0');
    field(263, 2, '00');
    field(265, 32, 'root');
    field(297, 32, 'root');
    let sum = 0;
    for (const byte of header) sum += byte;
    field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(header);
    if (!entry.dir && data.length > 0) {
      blocks.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad > 0) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
