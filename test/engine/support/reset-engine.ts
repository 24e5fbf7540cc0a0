import type Docker from 'dockerode';

/**
 * Removes every container and image from the PRIVATE engine, so each test file starts from an
 * empty image store. Only ever call it with a client bound to the private socket.
 */
export async function resetEngine(docker: Docker): Promise<void> {
  for (const container of await docker.listContainers({ all: true })) {
    await docker.getContainer(container.Id).remove({ force: true, v: true });
  }
  // Tags one at a time (parallel removal of an image's last tags races inside the engine). An image
  // with child images (built FROM it) is refused with 409 until its children are gone: another round.
  for (let round = 0; round < 10; round++) {
    const images = await docker.listImages({ all: true });
    if (images.length === 0) return;
    for (const image of images) {
      try {
        await docker.getImage(image.Id).remove({ force: true });
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== 404 && status !== 409) throw error;
      }
    }
  }
  const left = await docker.listImages({ all: true });
  if (left.length > 0) throw new Error(`resetEngine: ${left.length} image(s) could not be removed`);
}
