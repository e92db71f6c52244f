// Grants one principal a set of roles on one storage account (the whole account);
// deployed into the account's resource group. Used for the function's own host storage
// and for the Reader role on the backup account. Data roles on the backup account are
// narrower: container-roles.bicep and table-roles.bicep.

@description('Required. Name of the storage account, in this resource group.')
param storageAccountName string

@description('Required. Principal (object) id to grant the roles to; also names the assignments.')
param principalId string

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

// Named from the principal id, not from an identity's resource ID: after `azd down` and
// `azd up` an identity keeps its resource ID but gets a new principal, and an assignment
// of the old name would be refused (RoleAssignmentUpdateNotPermitted). A module
// parameter is known when the module starts, so it may be used here.
resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(storage.id, principalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: empty(principalType) ? null : principalType
    }
  }
]
