/** proper-lockfile's internal module (its lock table, read by instance-lock.ts); untyped upstream. */
declare module 'proper-lockfile/lib/lockfile.js' {
  const lockfileModule: unknown;
  export default lockfileModule;
}
