/**
 * A target names each app once and, within an app, each service once by serviceId and by name. Two
 * apps with one ID, or two services of one app with one serviceId, are two things the keeper cannot
 * tell apart: it would switch containers back and forth between them for ever. The parsers record
 * every app and service here as they read it and report the second use of an ID where it is written.
 */
export class TargetIds {
  private readonly apps = new Map<number, string>();
  private readonly serviceIds = new Map<string, { readonly name: string; readonly derived: boolean }>();
  private readonly serviceNames = new Set<string>();

  /** Why this app is a duplicate, or undefined. `where` names the app in the message (`apps[0]`). */
  app(id: number, where: string): string | undefined {
    const first = this.apps.get(id);
    if (first !== undefined)
      return `app id ${id} appears twice (${first} and ${where}); each app needs its own id`;
    this.apps.set(id, where);
    return undefined;
  }

  /**
   * Why this service is a duplicate within its app, or undefined. Two names that both derive one
   * serviceId are left to the derived-ID collision check, which says to give one an explicit id.
   */
  service(appId: number, serviceId: number, serviceName: string, derived: boolean): string | undefined {
    const nameKey = `${appId}/${serviceName}`;
    if (this.serviceNames.has(nameKey)) return `service '${serviceName}' appears twice in app ${appId}`;
    const idKey = `${appId}/${serviceId}`;
    const first = this.serviceIds.get(idKey);
    if (first !== undefined && !(first.derived && derived)) {
      return `serviceId ${serviceId} appears twice in app ${appId} (services '${first.name}' and '${serviceName}'); each service needs its own id`;
    }
    this.serviceNames.add(nameKey);
    if (first === undefined) this.serviceIds.set(idKey, { name: serviceName, derived });
    return undefined;
  }
}
