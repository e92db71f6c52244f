// The function app's user-assigned identity: it reaches the host storage, the backup
// account, Application Insights and the APIM services. A user-assigned identity (not a
// system-assigned one) exists before the site does, so every role can be in place
// before the host first starts.

@description('Required. Name of the identity.')
param name string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

@description('Required. Resource ID of the identity.')
output resourceId string = identity.id

@description('Required. Principal (object) id of the identity, for role assignments.')
output principalId string = identity.properties.principalId

@description('Required. Client id of the identity, for AZURE_CLIENT_ID and __clientId settings.')
output clientId string = identity.properties.clientId
