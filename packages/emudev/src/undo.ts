/**
 * Building something in steps, each step with its undo: when a later step fails, the undos of the
 * steps done run, last first, and the failure goes on. emudev builds devices this way (configure,
 * start) and drivers build theirs (probe: memory, threads, network ports...), so that a refused
 * device leaves nothing behind, whichever step refused it.
 */
export class UndoStack {
  private readonly undos: Array<() => unknown> = [];

  /** Records a step's undo and hands back what the step made. */
  push<T>(made: T, undo: (made: T) => unknown): T {
    this.undos.push(() => undo(made));
    return made;
  }

  /** The build succeeded: nothing is undone. */
  commit(): void {
    this.undos.length = 0;
  }

  /**
   * Undoes every step recorded, last first. An undo that fails does not stop the others; the first
   * failure is thrown after all ran only when there is no build failure to report (`cause`).
   */
  async unwind(cause?: unknown): Promise<void> {
    let first: unknown;
    for (const undo of this.undos.splice(0).reverse()) {
      try {
        await undo();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined && cause === undefined) throw first;
  }

  /** unwind() for undos that are synchronous (a constructor's). */
  unwindSync(): void {
    for (const undo of this.undos.splice(0).reverse()) {
      try {
        undo();
      } catch {
        // The build's own failure is the one to report; the other undos still run.
      }
    }
  }
}

/** Runs `build` with a fresh UndoStack: on failure every recorded undo runs, then the error goes on. */
export async function buildSteps<T>(build: (undo: UndoStack) => Promise<T> | T): Promise<T> {
  const undo = new UndoStack();
  try {
    const made = await build(undo);
    undo.commit();
    return made;
  } catch (err) {
    await undo.unwind(err);
    throw err;
  }
}

/** buildSteps() for a synchronous build (a constructor's). */
export function buildStepsSync<T>(build: (undo: UndoStack) => T): T {
  const undo = new UndoStack();
  try {
    const made = build(undo);
    undo.commit();
    return made;
  } catch (err) {
    undo.unwindSync();
    throw err;
  }
}
