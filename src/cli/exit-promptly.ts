/**
 * Ends the process with `code` once everything it owned is released and verified. A natural exit
 * (the event loop drained) then frees V8's heap object by object before the process ends (Node tears
 * down its environment and disposes of the isolate): tens of milliseconds for a daemon's heap, on the
 * wall time of `mcp-warden stop`, which waits for the exit. process.exit() skips that; the kernel
 * takes the memory back at once. Output still queued on stdout or stderr (pipes are asynchronous on
 * some systems) is never cut off: then the exit code is set and the loop drains as before.
 */
export function exitPromptly(code: number): void {
  process.exitCode = code;
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit(code);
}
