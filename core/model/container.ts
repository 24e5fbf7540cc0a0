/** A container as the engine lists it: the core only needs which image it pins and to whom it belongs. */
export interface Container {
  readonly id: string;
  /** The sha256 image ID the container was created from; a container pins its image by ID. */
  readonly imageId: string;
  readonly running: boolean;
  /** Set for containers of services image-keeper switches; absent for foreign containers (a supervisor, an operator's). */
  readonly service?: ContainerService;
}

export interface ContainerService {
  readonly appId: number;
  readonly serviceId: number;
  readonly serviceName: string;
  readonly commit: string;
  /** An update lock held by the app: its containers are not killed while it is set. */
  readonly locked?: boolean;
}
