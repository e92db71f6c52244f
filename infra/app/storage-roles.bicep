// Grants one principal a set of roles on one storage account; deployed into the
// account's resource group. The principal id may be a runtime value (another module's
// output): it is a parameter here, and the assignment's name is built from
// `principalSeed`, a resource ID known before the deployment starts (BCP120).

@description('Required. Name of the storage account, in this resource group.')
param storageAccountName string

@description('Required. Principal (object) id to grant the roles to.')
param principalId string

@description('Required. Stable identifier of that principal (its resource ID, or the APIM service\'s): names the assignments.')
param principalSeed string

@allowed([
  ''
  'ServicePrincipal'
  'User'
  'Group'
])
@description('Optional. Type of the principal; empty lets Azure look it up.')
param principalType string = ''

@description('Required. Role definition GUIDs to grant.')
param roleDefinitionIds array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(storage.id, principalSeed, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: empty(principalType) ? null : principalType
    }
  }
]
