// With AccessKey only: lets the function identity read the one secret that holds the
// backup account key (the Key Vault reference in BACKUP_STORAGE_KEY), not every secret of
// the vault, and sends the vault's audit log (who read which secret) to the workspace.
// Deployed into the vault's resource group; the vault must use the Azure RBAC permission
// model (with access policies, grant "Get" on secrets instead, which is vault-wide).

@description('Required. Name of the existing Key Vault.')
param keyVaultName string

@description('Required. Name of the secret holding the account key, in that vault.')
param secretName string

@description('Required. Principal (object) id of the function identity; also names the assignment.')
param principalId string

@description('Optional. Resource ID of the Log Analytics workspace for the vault\'s audit log; empty sends none.')
param logAnalyticsWorkspaceId string = ''

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: secretName
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(secret.id, principalId, keyVaultSecretsUser)
  scope: secret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'apim-backup-audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}
