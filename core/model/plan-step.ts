import type { Container } from './container.js';
import type { TargetImage, TargetService } from './target.js';
import type { ImageRow } from './image-row.js';

/** Why an image or row is kept; `status` prints these. */
export type NeedReason = 'container' | 'target' | 'delta-source' | 'dependent' | 'system';

/** The planner's output: what to do next, in order. An empty plan is the fixed point. */
export type PlanStep =
  | {
      readonly kind: 'save';
      readonly image: TargetImage;
      readonly dockerImageId: string;
      readonly rowId?: number;
    }
  | {
      readonly kind: 'fetch';
      readonly image: TargetImage;
      readonly deltaSource?: DeltaSource;
      readonly rowId?: number;
    }
  | { readonly kind: 'remove'; readonly row: ImageRow; readonly reason: string }
  | { readonly kind: 'kill'; readonly container: Container; readonly reason: string }
  | { readonly kind: 'start'; readonly service: TargetService; readonly dockerImageId: string }
  | { readonly kind: 'cleanup'; readonly imageIds: readonly string[] };

/** The delta source of a fetch: only the same app's same service's current image. */
export interface DeltaSource {
  readonly dockerImageId: string;
  readonly name: string;
}

export function describeStep(step: PlanStep): string {
  switch (step.kind) {
    case 'save':
      return `save ${step.image.name} for ${svc(step.image)} as ${short(step.dockerImageId)} (present by digest, no download)`;
    case 'fetch':
      return `fetch ${step.image.name} for ${svc(step.image)}${step.deltaSource ? ` (delta from ${short(step.deltaSource.dockerImageId)})` : ''}`;
    case 'remove':
      return `remove row ${step.row.id} ${step.row.name} for ${svc(step.row)} (${step.reason})`;
    case 'kill':
      return `kill container ${step.container.id}${step.container.service ? ` of ${svc(step.container.service)}` : ''} (${step.reason})`;
    case 'start':
      return `start ${svc(step.service)} on ${short(step.dockerImageId)}`;
    case 'cleanup':
      return `idle cleanup of ${step.imageIds.length} dangling image(s): ${step.imageIds.map(short).join(', ')}`;
  }
}

function svc(s: { appId: number; serviceName: string; commit: string }): string {
  return `${s.appId}/${s.serviceName}@${s.commit}`;
}

export function short(id: string): string {
  return id.startsWith('sha256:') ? id.slice(7, 19) : id;
}
