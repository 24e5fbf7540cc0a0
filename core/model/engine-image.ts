/** A layer as the engine and the registry know it: content-addressed, with its compressed size. */
export interface Layer {
  readonly digest: string;
  readonly size: number;
}

/** What the engine reports about one image (the subset image-keeper needs). */
export interface EngineImage {
  /** `sha256:<config digest>`. */
  readonly id: string;
  /** `repo:tag` references. */
  readonly repoTags: readonly string[];
  /** `repo@sha256:<manifest digest>` references. */
  readonly repoDigests: readonly string[];
  readonly layers: readonly Layer[];
  /** Bytes on disk attributed to this image (sum of its layers). */
  readonly size: number;
}

/** Dangling means no tags AND no digests: an image pulled by digest only is not dangling. */
export function isDangling(image: Pick<EngineImage, 'repoTags' | 'repoDigests'>): boolean {
  for (const t of image.repoTags) if (t !== '<none>:<none>') return false;
  for (const d of image.repoDigests) if (d !== '<none>@<none>') return false;
  return true;
}

export function allReferences(image: Pick<EngineImage, 'repoTags' | 'repoDigests'>): string[] {
  return [...image.repoTags, ...image.repoDigests];
}
