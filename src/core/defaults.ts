/** Defaults the CLI needs before it loads anything heavy (so `status`, `stop` and a losing `serve` start fast). */
export const DEFAULT_PORT = 7374;
export const DEFAULT_HOST = '127.0.0.1';
/** Where `serve --inspect` sends the actor system by default: the Stately inspector relay's default. */
export const DEFAULT_INSPECT_URL = 'ws://localhost:8080';
