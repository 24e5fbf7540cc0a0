/**
 * Adds a tag to a manifest the private registry already serves (the same bytes PUT under another
 * name), so tests get two tags of one image without building or pushing anything. The repository
 * list (`/v2/_catalog`) does not change.
 */
export async function tagInRegistry(
  registryUrl: string,
  path: string,
  digest: string,
  tag: string,
): Promise<void> {
  const accept = [
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
  ].join(', ');
  const manifest = await fetch(`${registryUrl}/v2/${path}/manifests/${digest}`, { headers: { accept } });
  if (manifest.status !== 200) throw new Error(`GET manifest ${path}@${digest}: HTTP ${manifest.status}`);
  const contentType =
    manifest.headers.get('content-type') ?? 'application/vnd.docker.distribution.manifest.v2+json';
  const body = Buffer.from(await manifest.arrayBuffer());
  const put = await fetch(`${registryUrl}/v2/${path}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body,
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`PUT manifest ${path}:${tag}: HTTP ${put.status}`);
  const served = put.headers.get('docker-content-digest');
  if (served !== digest) throw new Error(`${path}:${tag} got digest ${String(served)}, expected ${digest}`);
}
