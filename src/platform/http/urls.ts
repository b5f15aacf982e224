import { AppError } from './errors.ts';

/**
 * Outbound URLs (identity providers, webhooks) must be https, unless the deployment allows http
 * for development; credentials in the URL are refused, since they would be stored and logged.
 */
export function assertOutboundUrl(url: string, field: string, allowInsecureHttp: boolean): void {
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && allowInsecureHttp)) {
    throw new AppError('VALIDATION_ERROR', `${field} must be an https:// URL`, [{ field, message: 'must be an https:// URL' }]);
  }
  if (parsed.username || parsed.password) {
    throw new AppError('VALIDATION_ERROR', `${field} must not carry credentials`, [{ field, message: 'must not carry credentials' }]);
  }
}
