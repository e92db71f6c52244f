// With AccessKey only: lets the function identity resolve the Key Vault reference in
// BACKUP_STORAGE_KEY. Deployed into the vault's resource group; the vault must use the
// Azure RBAC permission model (with access policies, grant "Get" on secrets instead).

@description('Required. Name of the existing Key Vault.')
param keyVaultName string

@description('Required. Principal (object) id of the function identity.')
param principalId string

@description('Required. Resource ID of the function identity; names the assignment.')
param principalSeed string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalSeed, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
