/**
 * A Target written back as our own target JSON (core/target/parse-target.ts), for `image-keeper apply`:
 * every cloud ID explicit, so the file parses to exactly the Target it came from.
 */
import type { Target } from '../../../core/model/target.js';

export function ownTargetJson(target: Target): string {
  const apps = new Map<number, { id: number; commit: string; releaseId: number; services: unknown[] }>();
  for (const s of target.services) {
    let app = apps.get(s.appId);
    if (app === undefined) {
      app = { id: s.appId, commit: s.commit, releaseId: s.releaseId, services: [] };
      apps.set(s.appId, app);
    }
    // The format holds one commit and release per app, as the cloud sends them.
    if (app.commit !== s.commit || app.releaseId !== s.releaseId) {
      throw new Error(
        `app ${s.appId} mixes releases (${app.commit}, ${s.commit}): not expressible as a target file`,
      );
    }
    app.services.push({
      id: s.serviceId,
      name: s.serviceName,
      image: s.name,
      imageId: s.imageId,
      strategy: s.strategy,
    });
  }
  const dependent = target.dependent.map((d) => ({
    app: d.appId,
    service: d.serviceName,
    serviceId: d.serviceId,
    image: d.name,
    commit: d.commit,
    imageId: d.imageId,
    releaseId: d.releaseId,
  }));
  return `${JSON.stringify({ apps: [...apps.values()], dependent }, null, 2)}\n`;
}
