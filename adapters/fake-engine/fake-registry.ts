import { KeeperError } from '../../core/errors.js';
import type { Layer } from '../../core/model/engine-image.js';
import { parseReference } from '../../core/reference/image-reference.js';

export interface RegistryManifest {
  readonly repository: string;
  readonly digest: string;
  readonly imageId: string;
  readonly layers: readonly Layer[];
  readonly tags: readonly string[];
}

/** A registry in memory: manifests by repository and digest, tags pointing at digests. */
export class FakeRegistry {
  private readonly byDigest = new Map<string, RegistryManifest>();
  private readonly byTag = new Map<string, string>();

  constructor(manifests: readonly RegistryManifest[] = []) {
    for (const m of manifests) this.add(m);
  }

  add(manifest: RegistryManifest): void {
    this.byDigest.set(`${manifest.repository}@${manifest.digest}`, manifest);
    for (const tag of manifest.tags) this.byTag.set(`${manifest.repository}:${tag}`, manifest.digest);
  }

  manifests(): RegistryManifest[] {
    return [...this.byDigest.values()];
  }

  /** Resolves `repo@digest` or `repo:tag`; 404 as a REGISTRY_ERROR that is not transient. */
  resolve(ref: string): RegistryManifest {
    const parsed = parseReference(ref);
    const digest = parsed.digest ?? this.byTag.get(`${parsed.repository}:${parsed.tag ?? 'latest'}`);
    const manifest = digest === undefined ? undefined : this.byDigest.get(`${parsed.repository}@${digest}`);
    if (!manifest) {
      throw new KeeperError('REGISTRY_ERROR', `registry: manifest unknown for ${ref} (404)`, {
        details: { status: 404, transient: false },
      });
    }
    return manifest;
  }
}
