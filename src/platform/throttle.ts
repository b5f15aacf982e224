/** Runs `task` at most once per `intervalMs`, in the background; failures are left to the next run. */
export function throttled(task: () => Promise<unknown>, intervalMs: number): () => void {
  let lastRun = 0;
  return () => {
    const now = Date.now();
    if (now - lastRun < intervalMs) return;
    lastRun = now;
    task().catch(() => undefined);
  };
}
