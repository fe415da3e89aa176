/** The part of autocannon 8's API the throughput section uses (the package ships no types). */
declare module 'autocannon' {
  interface Options {
    url: string;
    connections: number;
    duration: number;
    method: string;
    headers: Record<string, string>;
    body: string;
    requests?: Array<{
      setupRequest?: (req: { body?: string }) => { body?: string };
      onResponse?: (status: number, body: string) => void;
    }>;
  }
  interface Result {
    requests: { average: number };
    latency: { p50: number; p99: number };
    errors: number;
    timeouts: number;
  }
  function autocannon(opts: Options): Promise<Result>;
  export default autocannon;
}
