import type Docker from 'dockerode';

/**
 * Removes every container and image from the PRIVATE engine, so each test file starts from an
 * empty image store. Only ever call it with a client bound to the private socket.
 */
export async function resetEngine(docker: Docker): Promise<void> {
  for (const container of await docker.listContainers({ all: true })) {
    await docker.getContainer(container.Id).remove({ force: true, v: true });
  }
  // Tags one at a time (parallel removal of an image's last tags races inside the engine).
  for (const image of await docker.listImages({ all: true })) {
    try {
      await docker.getImage(image.Id).remove({ force: true });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }
  const left = await docker.listImages({ all: true });
  if (left.length > 0) throw new Error(`resetEngine: ${left.length} image(s) could not be removed`);
}
