/**
 * Watches `docker events` of the private engine and judges every image deletion at the moment it
 * happens: an image is needed while a container (running or stopped) uses it, and always when it is
 * in `protectedIds` (the target's images). The containers alive when the watch starts are read first;
 * later ones come from create/destroy events, in the order the engine reports them.
 */
import type Docker from 'dockerode';

interface EngineEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Readonly<Record<string, string>> };
}

export interface DeletionReport {
  /** Image IDs deleted while the watch ran, in order. */
  readonly deleted: readonly string[];
  /** One line per deletion of a needed image. */
  readonly violations: readonly string[];
}

export class DeletionWatch {
  private readonly containers = new Map<string, string>();
  private readonly deleted: string[] = [];
  private readonly violations: string[] = [];
  private buffered = '';

  private constructor(
    private readonly stream: NodeJS.ReadableStream & { destroy?: () => void },
    private readonly protectedIds: ReadonlySet<string>,
  ) {
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    // The engine going away ends the stream; what was seen until then still counts.
    stream.on('error', () => undefined);
  }

  static async start(docker: Docker, protectedIds: ReadonlySet<string>): Promise<DeletionWatch> {
    const stream = (await docker.getEvents({
      filters: { type: ['container', 'image'] },
    })) as NodeJS.ReadableStream;
    const watch = new DeletionWatch(stream, protectedIds);
    // After subscribing, so a container created in between is seen one way or the other.
    for (const c of await docker.listContainers({ all: true })) watch.containers.set(c.Id, c.ImageID);
    return watch;
  }

  /** Waits for events still in flight, then stops watching. */
  async stop(settleMs = 300): Promise<DeletionReport> {
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    this.stream.destroy?.();
    return { deleted: [...this.deleted], violations: [...this.violations] };
  }

  private onData(chunk: Buffer): void {
    this.buffered += chunk.toString('utf8');
    for (let newline = this.buffered.indexOf('\n'); newline >= 0; newline = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line.length > 0) this.onEvent(JSON.parse(line) as EngineEvent);
    }
  }

  private onEvent(event: EngineEvent): void {
    const id = event.Actor?.ID ?? '';
    if (event.Type === 'container' && event.Action === 'create') {
      // image-keeper creates containers by full image ID; anything else is resolved when it matters.
      this.containers.set(id, event.Actor?.Attributes?.['image'] ?? '');
    } else if (event.Type === 'container' && event.Action === 'destroy') {
      this.containers.delete(id);
    } else if (event.Type === 'image' && event.Action === 'delete') {
      this.deleted.push(id);
      if (this.protectedIds.has(id)) this.violations.push(`target image ${id} was deleted`);
      const users = [...this.containers].filter(([, imageId]) => imageId === id).map(([c]) => c.slice(0, 12));
      if (users.length > 0)
        this.violations.push(`image ${id} was deleted while container(s) ${users.join(', ')} used it`);
    }
  }
}
