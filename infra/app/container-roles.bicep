// Grants one principal a set of data roles on one blob container (not the account);
// deployed into the account's resource group. With blobPattern, every assignment carries
// an Azure ABAC condition: writing, adding to, deleting or renaming (move, on accounts
// with a hierarchical namespace) a blob is allowed only when the blob's whole name
// matches blobPattern; reading a blob's content only when it matches blobPattern or one
// of readPatterns. Listing blob names stays allowed (the path attribute does not exist
// for a list request).
//
// The patterns are StringLike patterns (Microsoft Learn, "Azure role assignment condition
// format and syntax"): case-sensitive, matched against the whole blob name (without the
// container name), '?' one character and '*' any run of characters. main.bicep passes the
// exact shape of a backup name, never a bare prefix (see there).

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

@description('Optional. Limit blob access to names matching this StringLike pattern (an APIM service\'s backups: \'<service>-????????T??????Z.apimbackup\'); empty grants the whole container.')
param blobPattern string = ''

@description('Optional. With blobPattern: further StringLike patterns of names whose blobs the principal may read, never write, delete or rename (a restore target reads the backups of the services restored into it, with its own identity).')
param readPatterns array = []

var blobActions = 'Microsoft.Storage/storageAccounts/blobServices/containers/blobs'
// One line each on purpose: checkov's Bicep parser does not read a ternary or an
// expression broken over lines. Two expressions, both must hold:
// - writes, appends, deletes and renames name a blob matching blobPattern. move/action is
//   in Storage Blob Data Contributor: left out, an identity could rename another service's
//   backup (an existing account with a hierarchical namespace) into its own names;
// - reads other than List name a blob matching blobPattern or one of readPatterns.
// Everything else the role allows (List) is not affected.
var writeCondition = '((!(ActionMatches{\'${blobActions}/write\'}) AND !(ActionMatches{\'${blobActions}/add/action\'}) AND !(ActionMatches{\'${blobActions}/delete\'}) AND !(ActionMatches{\'${blobActions}/move/action\'})) OR (@Resource[${blobActions}:path] StringLike \'${blobPattern}\'))'
var readPaths = [for pattern in union([blobPattern], readPatterns): '@Resource[${blobActions}:path] StringLike \'${pattern}\'']
var readCondition = '((!(ActionMatches{\'${blobActions}/read\'} AND NOT SubOperationMatches{\'Blob.List\'})) OR (${join(readPaths, ' OR ')}))'
var nameCondition = '${readCondition} AND ${writeCondition}'

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
      description: empty(blobPattern) ? 'APIM backup container' : 'APIM backups: writes and deletes only of blobs named ${blobPattern}'
      condition: empty(blobPattern) ? null : nameCondition
      conditionVersion: empty(blobPattern) ? null : '2.0'
    }
  }
]
