import type { Container } from '../core/model/container.js';
import type { EngineImage } from '../core/model/engine-image.js';
import { isDangling } from '../core/model/engine-image.js';
import type { ImageRow } from '../core/model/image-row.js';
import { describeStep, short } from '../core/model/plan-step.js';
import type { Target } from '../core/model/target.js';
import type { DiskUsage } from '../core/ports/engine.js';
import type { CliIo } from './cli-io.js';
import type { CleanupPreview } from './cleanup-preview.js';
import { previewCleanup } from './cleanup-preview.js';
import { withDevice } from './device.js';
import type { DeviceFlags, Env } from './device-options.js';
import { resolveDeviceSettings } from './device-options.js';
import { EXIT } from './exit-codes.js';
import { formatBytes } from './progress-renderer.js';

export interface StatusFlags extends DeviceFlags {
  readonly json?: boolean;
}

/**
 * managed: a row references it, so image-keeper may remove it once nothing needs it;
 * dangling: no tag and no digest, idle cleanup removes it when no row or container uses it;
 * foreign: anything else (an operator's own image): image-keeper never removes it.
 */
export type ImageMark = 'managed' | 'dangling' | 'foreign';

export interface StatusReport {
  readonly db: { readonly path: string; readonly exists: boolean };
  readonly engine: string;
  readonly target: Target | null;
  readonly rows: readonly ImageRow[];
  readonly images: readonly {
    readonly id: string;
    readonly repoTags: readonly string[];
    readonly repoDigests: readonly string[];
    readonly size: number;
    readonly mark: ImageMark;
    /** Why it is kept (running container, target, delta source, dependent app); empty when nothing needs it. */
    readonly needs: readonly string[];
  }[];
  readonly containers: readonly Container[];
  readonly startupCleanup: { readonly repaired: readonly string[]; readonly deleted: readonly string[] };
  /** The planner's next steps, after startup cleanup, toward the persisted target. */
  readonly nextSteps: readonly string[];
  readonly disk: DiskUsage;
}

/** `image-keeper status`: read-only; nothing on the device changes (a missing DB is not created). */
export async function statusCommand(flags: StatusFlags, io: CliIo, env: Env = process.env): Promise<number> {
  const settings = resolveDeviceSettings(flags, env);
  for (const warning of settings.warnings) io.err(`image-keeper: warning: ${warning}`);
  const report = await withDevice({ settings, access: 'read-only' }, async (device) => {
    const rows = await device.state.listRows();
    const target = await device.state.readTarget();
    const images = await device.engine.listImages();
    const containers = await device.engine.listContainers();
    const disk = await device.engine.diskUsage();
    const preview = await previewCleanup(device, rows, target);
    return buildStatus(
      {
        dbPath: settings.dbPath,
        dbExists: device.dbExisted,
        engine: settings.engineUrl,
        rows,
        target,
        images,
        containers,
        disk,
      },
      preview,
    );
  });
  const lines = flags.json === true ? [JSON.stringify(report)] : renderStatus(report);
  for (const line of lines) io.out(line);
  return EXIT.OK;
}

export interface StatusInput {
  readonly dbPath: string;
  readonly dbExists: boolean;
  readonly engine: string;
  readonly rows: readonly ImageRow[];
  readonly target: Target | null;
  readonly images: readonly EngineImage[];
  readonly containers: readonly Container[];
  readonly disk: DiskUsage;
}

export function buildStatus(
  input: StatusInput,
  preview: Pick<CleanupPreview, 'startup' | 'plan'>,
): StatusReport {
  const managed = new Set(input.rows.flatMap((r) => (r.dockerImageId === null ? [] : [r.dockerImageId])));
  const images = input.images.map((image) => {
    const users = input.containers.filter((c) => c.imageId === image.id);
    const needs = [...(preview.plan.needs.get(image.id) ?? [])].map((reason) => {
      if (reason !== 'container') return reason;
      return users.some((c) => c.running) ? 'running container' : 'stopped container';
    });
    const mark: ImageMark = managed.has(image.id) ? 'managed' : isDangling(image) ? 'dangling' : 'foreign';
    return {
      id: image.id,
      repoTags: image.repoTags,
      repoDigests: image.repoDigests,
      size: image.size,
      mark,
      needs,
    };
  });
  return {
    db: { path: input.dbPath, exists: input.dbExists },
    engine: input.engine,
    target: input.target,
    rows: input.rows,
    images,
    containers: input.containers,
    startupCleanup: preview.startup,
    nextSteps: preview.plan.steps.map(describeStep),
    disk: input.disk,
  };
}

export function renderStatus(report: StatusReport): string[] {
  const out: string[] = [];
  out.push(
    `state DB: ${report.db.path}${report.db.exists ? ` (${report.rows.length} row(s))` : ' (does not exist yet)'}`,
  );
  out.push(`engine:   ${report.engine}`);
  const target = report.target;
  if (target === null) out.push('target:   none accepted yet (an unknown target removes nothing)');
  else {
    out.push(`target:   ${target.services.length} service(s), ${target.dependent.length} dependent image(s)`);
    for (const s of target.services)
      out.push(
        `  ${s.appId}/${s.serviceName}@${s.commit.slice(0, 8)} = ${s.name}${s.strategy === 'delete-then-download' ? ' (delete-then-download)' : ''}`,
      );
    for (const d of target.dependent)
      out.push(`  dependent ${d.appId}/${d.serviceName}@${d.commit.slice(0, 8)} = ${d.name}`);
  }
  out.push(`rows:${report.rows.length === 0 ? ' (none)' : ''}`);
  for (const r of report.rows) {
    const id = r.dockerImageId === null ? 'pending (pull not finished)' : short(r.dockerImageId);
    out.push(`  #${r.id} ${r.appId}/${r.serviceName}@${r.commit.slice(0, 8)} ${r.name} -> ${id}`);
  }
  out.push(`images:${report.images.length === 0 ? ' (none)' : ''}`);
  for (const i of report.images) {
    const refs = [...i.repoTags, ...i.repoDigests].join(', ') || '<none>';
    const why =
      i.needs.length > 0
        ? `needed: ${i.needs.join(', ')}`
        : i.mark === 'managed'
          ? 'not needed: removed by the next apply'
          : i.mark === 'dangling'
            ? 'idle cleanup removes it'
            : 'not managed by image-keeper: never removed';
    out.push(`  ${short(i.id)} ${i.mark.padEnd(8)} ${formatBytes(i.size).padStart(9)}  ${refs}  [${why}]`);
  }
  out.push(`containers:${report.containers.length === 0 ? ' (none)' : ''}`);
  for (const c of report.containers) {
    const owner = c.service
      ? `${c.service.appId}/${c.service.serviceName}@${c.service.commit.slice(0, 8)}${c.service.locked ? ' (locked)' : ''}`
      : 'foreign';
    out.push(`  ${c.id.slice(0, 12)} ${owner} on ${short(c.imageId)} ${c.running ? 'running' : 'stopped'}`);
  }
  const { repaired, deleted } = report.startupCleanup;
  if (repaired.length + deleted.length > 0) {
    out.push('startup cleanup at the next start:');
    for (const r of repaired) out.push(`  repair row ${r}`);
    for (const d of deleted) out.push(`  delete row ${d}`);
  }
  out.push(`next steps:${report.nextSteps.length === 0 ? ' none (converged)' : ''}`);
  report.nextSteps.forEach((step, n) => out.push(`  ${n + 1}. ${step}`));
  out.push(
    `disk:     images ${formatBytes(report.disk.images)}, partial pulls ${formatBytes(report.disk.partial)}`,
  );
  return out;
}
