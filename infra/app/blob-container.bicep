// One private blob container in an existing storage account of this resource group
// (the dead-letter container of change events, main.bicep).

@description('Required. Name of the storage account, in this resource group.')
param storageAccountName string

@description('Required. Name of the container.')
param containerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

@description('Required. Name of the container.')
output name string = container.name
