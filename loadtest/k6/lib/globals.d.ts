// k6 provides a console; the type definitions leave it to the DOM or node
// libraries, which k6 scripts must not pull in.
declare global {
  const console: {
    log(...args: unknown[]): void;
    warn(...args: unknown[]): void;
    error(...args: unknown[]): void;
  };
}
export {};
