/** What a client needs to upload one object straight to storage. */
export type PresignedUpload = { method: 'PUT'; url: string; headers: Record<string, string>; expiresAt: Date };
/** An HTML-form (POST policy) upload: post `fields` plus the file as multipart/form-data to `url`. */
export type PresignedPost = { url: string; fields: Record<string, string>; expiresAt: Date };
export type StoredObject = { size: number; contentType: string | undefined };

/** Object storage behind a small interface: S3 in production, local disk for the embedded default. */
export type ObjectStorage = {
  /** A URL accepting exactly one PUT of `contentLength` bytes of `contentType` until it expires. */
  presignPut(key: string, options: { contentType: string; contentLength: number; expiresInSeconds: number }): Promise<PresignedUpload>;
  /** A form upload of one object of `contentType`, at most `maxBytes`, until it expires. */
  presignPost(key: string, options: { contentType: string; maxBytes: number; expiresInSeconds: number }): Promise<PresignedPost>;
  presignGet(key: string, options: { expiresInSeconds: number }): Promise<string>;
  head(key: string): Promise<StoredObject | null>;
  /** The object's bytes as stored now, or null when there is none. */
  get(key: string): Promise<(StoredObject & { body: Buffer }) | null>;
  put(key: string, body: Buffer, contentType: string): Promise<void>;
};

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
