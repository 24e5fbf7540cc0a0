/**
 * The part of a device's end state that the fakes and a real engine must agree on, as sorted lines:
 * images by manifest digest, rows (name, app, service, commit, image by digest), and, for information,
 * containers. Image IDs are rendered as the digests their image carries, so the comparison does not
 * depend on how an engine computes IDs.
 */
import type { Container } from '../../../core/model/container.js';
import type { EngineImage } from '../../../core/model/engine-image.js';
import type { ImageRow } from '../../../core/model/image-row.js';
import { digestOf } from '../../../core/reference/image-reference.js';

export interface FinalState {
  readonly images: readonly string[];
  readonly rows: readonly string[];
  readonly containers: readonly string[];
}

export function finalStateOf(
  images: readonly EngineImage[],
  rows: readonly ImageRow[],
  containers: readonly Container[],
  symbolize: (text: string) => string = (t) => t,
): FinalState {
  const byId = new Map(images.map((i) => [i.id, i]));
  const digests = (image: EngineImage): string => {
    const set = [...new Set(image.repoDigests.map((r) => digestOf(r) ?? r))].sort();
    return set.length > 0 ? `[${set.join(', ')}]` : `untagged ${image.id}`;
  };
  const imageLabel = (id: string | null): string => {
    if (id === null) return 'null';
    const image = byId.get(id);
    return image ? digests(image) : `missing ${id}`;
  };
  const sorted = (lines: string[]): string[] => lines.map(symbolize).sort();
  return {
    images: sorted(images.map(digests)),
    rows: sorted(
      rows.map((r) => `${r.name} ${r.appId}/${r.serviceName}@${r.commit} -> ${imageLabel(r.dockerImageId)}`),
    ),
    containers: sorted(
      containers.map((c) => {
        const owner = c.service
          ? `${c.service.appId}/${c.service.serviceName}@${c.service.commit}`
          : 'foreign';
        return `${owner} on ${imageLabel(c.imageId)} ${c.running ? 'running' : 'stopped'}`;
      }),
    ),
  };
}
