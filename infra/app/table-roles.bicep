// Grants one principal a set of data roles on named tables of one storage account (not
// on every table of the account); deployed into the account's resource group.

@description('Required. Name of the storage account, in this resource group.')
param storageAccountName string

@description('Required. Names of the tables.')
param tableNames array

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

@description('Required. Role definition GUID to grant on each table.')
param roleDefinitionId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: {
    name: guid(tables[i].id, principalId, roleDefinitionId)
    scope: tables[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
      principalId: principalId
      principalType: empty(principalType) ? null : principalType
    }
  }
]
