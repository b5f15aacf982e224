// The official TokenD SDK ships no types; the tests drive it as untyped JavaScript.
declare module '@tokend/js-sdk' {
  const sdk: any;
  export default sdk;
}
declare module '@tokend/js-sdk/lib/api2/middlewares/sign-request.js' {
  export function signRequest(config: object, keypair: unknown, accountId: string): Record<string, string>;
}
