/**
 * Publishes an image one registry serves under a repository of another registry, with a manifest that
 * differs only in its bytes (re-serialised JSON): same config and layers, so the same image ID, but a
 * different manifest digest. That is what two repositories built from one context give (balena #1434,
 * FB-02): one engine image carrying two digest references, one per repository.
 */
import { createHash } from 'node:crypto';

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

export interface TwinRequest {
  /** "http://127.0.0.1:PORT" of the registry serving the image. */
  readonly fromUrl: string;
  readonly fromPath: string;
  readonly digest: string;
  /** "http://127.0.0.1:PORT" of the registry that gets the twin (may be the same). */
  readonly toUrl: string;
  readonly toPath: string;
}

/** Copies the blobs and puts the twin manifest; returns its digest. */
export async function publishTwin(request: TwinRequest): Promise<string> {
  const { fromUrl, fromPath, digest, toUrl, toPath } = request;
  const response = await fetch(`${fromUrl}/v2/${fromPath}/manifests/${digest}`, {
    headers: { accept: ACCEPT },
  });
  if (response.status !== 200) throw new Error(`GET manifest ${fromPath}@${digest}: HTTP ${response.status}`);
  const contentType =
    response.headers.get('content-type') ?? 'application/vnd.docker.distribution.manifest.v2+json';
  const manifest = JSON.parse(await response.text()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  for (const blob of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const source = await fetch(`${fromUrl}/v2/${fromPath}/blobs/${blob}`);
    if (source.status !== 200) throw new Error(`GET blob ${fromPath}@${blob}: HTTP ${source.status}`);
    const bytes = Buffer.from(await source.arrayBuffer());
    const start = await fetch(`${toUrl}/v2/${toPath}/blobs/uploads/`, { method: 'POST' });
    await start.arrayBuffer();
    const location = start.headers.get('location');
    if (start.status !== 202 || location === null)
      throw new Error(`POST ${toPath} upload: HTTP ${start.status}`);
    const url = new URL(location, toUrl);
    url.searchParams.set('digest', blob);
    const put = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`PUT blob ${blob} into ${toPath}: HTTP ${put.status}`);
  }
  const body = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`);
  const twin = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const put = await fetch(`${toUrl}/v2/${toPath}/manifests/${twin}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body,
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`PUT manifest ${toPath}@${twin}: HTTP ${put.status}`);
  return twin;
}
