// Reads an existing user-assigned identity (the one the APIM services use for backups),
// deployed into that identity's own resource group.

@description('Required. Name of the existing user-assigned identity.')
param name string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: name
}

@description('Required. Principal (object) id of the identity.')
output principalId string = identity.properties.principalId

@description('Required. Client id of the identity (BACKUP_IDENTITY_CLIENT_ID).')
output clientId string = identity.properties.clientId
