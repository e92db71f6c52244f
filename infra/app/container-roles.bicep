// Grants one principal a set of data roles on one blob container (not the account);
// deployed into the account's resource group. With blobPrefix, every assignment carries
// an Azure ABAC condition: writing, adding to, deleting or renaming (move, on accounts
// with a hierarchical namespace) a blob is allowed only when the blob's name starts with
// blobPrefix; reading a blob's content only when it starts with blobPrefix or with one
// of readPrefixes. Listing blob names stays allowed (the path attribute does not exist
// for a list request).

@description('Required. Name of the storage account, in this resource group.')
param storageAccountName string

@description('Required. Name of the blob container.')
param containerName string

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

@description('Required. Role definition GUIDs to grant (data roles that condition on blob paths: Storage Blob Data Reader or Contributor).')
param roleDefinitionIds array

@description('Optional. Limit blob access to names starting with this prefix (an APIM service\'s backups: \'<service>-\'); empty grants the whole container.')
param blobPrefix string = ''

@description('Optional. With blobPrefix: further name prefixes whose blobs the principal may read, never write, delete or rename (a restore target reads the backups of the services restored into it, with its own identity).')
param readPrefixes array = []

var blobActions = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs'
// One line each on purpose: checkov's Bicep parser does not read a ternary or an
// expression broken over lines. Two expressions, both must hold:
// - writes, appends, deletes and renames name a blob under blobPrefix. move/action is in
//   Storage Blob Data Contributor: left out, an identity could rename another service's
//   backup (an existing account with a hierarchical namespace) into its own prefix;
// - reads other than List name a blob under blobPrefix or one of readPrefixes.
// Everything else the role allows (List) is not affected.
var writeCondition = '((!(ActionMatches{\'${blobActions}/write\'}) AND !(ActionMatches{\'${blobActions}/add/action\'}) AND !(ActionMatches{\'${blobActions}/delete\'}) AND !(ActionMatches{\'${blobActions}/move/action\'})) OR (@Resource[${blobActions}:path] StringStartsWith \'${blobPrefix}\'))'
var readPaths = [for prefix in union([blobPrefix], readPrefixes): '@Resource[${blobActions}:path] StringStartsWith \'${prefix}\'']
var readCondition = '((!(ActionMatches{\'${blobActions}/read\'} AND NOT SubOperationMatches{\'Blob.List\'})) OR (${join(readPaths, ' OR ')}))'
var prefixCondition = '${readCondition} AND ${writeCondition}'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(container.id, principalId, roleId)
    scope: container
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: empty(principalType) ? null : principalType
      description: empty(blobPrefix) ? 'APIM backup container' : 'APIM backups: writes and deletes only of ${blobPrefix}*'
      condition: empty(blobPrefix) ? null : prefixCondition
      conditionVersion: empty(blobPrefix) ? null : '2.0'
    }
  }
]
