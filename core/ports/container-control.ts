import type { Container } from '../model/container.js';
import type { TargetService } from '../model/target.js';

/**
 * The narrow part of container management image-keeper needs: images only become unneeded when
 * containers move on, so the core switches a service to its target image at the right moment.
 */
export interface ContainerControl {
  /** Stops and removes the container; a container already gone is not an error. */
  kill(container: Container): Promise<void>;
  /** Creates and starts the service's container on the given image ID. */
  start(service: TargetService, dockerImageId: string): Promise<Container>;
}
