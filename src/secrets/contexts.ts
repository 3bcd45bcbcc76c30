/** The authenticated context of each sealed column, binding a ciphertext to its row and purpose. */
export const sealContext = {
  credential: (webhookId: string) => `webhook:${webhookId}:credential`,
  signingSecret: (webhookId: string) => `webhook:${webhookId}:signing-secret`,
};
