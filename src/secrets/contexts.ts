/** The authenticated context of each sealed column, binding a ciphertext to its row and purpose. */
export const sealContext = {
  credential: (webhookId: string) => `webhook:${webhookId}:credential`,
  signingSecret: (webhookId: string) => `webhook:${webhookId}:signing-secret`,
  /** Its own context, so a rotated-out secret cannot be copied back into the current-secret column. */
  previousSigningSecret: (webhookId: string) => `webhook:${webhookId}:previous-signing-secret`,
  ed25519SecretKey: (webhookId: string) => `webhook:${webhookId}:ed25519-secret-key`,
};
