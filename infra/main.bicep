// Serverless backup for Azure API Management: a Python function app on Flex Consumption
// that backs up and restores the APIM services listed in `apimServiceIds`.
//
// Raw resources rather than Azure Verified Modules (br/public:avm/...): this template
// must parse offline with tree-sitter-bicep (tests/infra/), and registry modules can
// neither be fetched nor inspected here. Every resource is written with the same
// shape and API versions the AVM modules and the Azure Functions azd quickstarts use.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Required. Name of the azd environment; used in resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Required. Azure region for every new resource (the region must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Optional. Name of the resource group to create; empty means rg-<environmentName>.')
param resourceGroupName string = ''

@description('Optional. Object id of the user running azd; empty skips it. It gets read-only data access (Storage Blob Data Reader, Storage Table Data Reader) to the backup account, to inspect backups and the ledger.')
param principalId string = ''

@minLength(1)
@description('Required. APIM services to back up: full resource IDs, separated by commas, semicolons or whitespace. They may live in any resource group or subscription the deploying identity can assign roles in.')
param apimServiceIds string

@description('Optional. APIM services a restore may write into (resource IDs, same separators); empty means the services in apimServiceIds.')
param restoreTargetIds string = ''

@allowed([
  ''
  'SystemAssignedManagedIdentity'
  'UserAssignedManagedIdentity'
  'AccessKey'
])
@description('Optional. How APIM reaches the backup storage account; empty means SystemAssignedManagedIdentity.')
param backupAccessType string = 'SystemAssignedManagedIdentity'

@description('Optional. Resource ID of the user-assigned identity that every APIM service uses for backups. Required with UserAssignedManagedIdentity; the identity must already be attached to each APIM service.')
param apimBackupIdentityId string = ''

@description('Optional. Resource ID of an existing storage account to hold backups (any resource group or subscription); empty creates a new one.')
param existingBackupStorageAccountId string = ''

@description('Optional. Blob container for backups; empty means apim-backups.')
param backupContainerName string = 'apim-backups'

@description('Optional. Table for the backup ledger; empty means apimbackups.')
param ledgerTableName string = 'apimbackups'

@description('Optional. Table for restores, locks and other bookkeeping; empty means apimoperations.')
param operationsTableName string = 'apimoperations'

@description('Optional. With AccessKey only: the URI of a Key Vault secret that holds the backup account key (https://<vault>.vault.azure.net/secrets/<name>). The key itself never passes through this template.')
param backupStorageKeySecretUri string = ''

@description('Optional. With AccessKey only: resource ID of the (RBAC-mode) Key Vault holding that secret, to grant the function identity Key Vault Secrets User on it; empty leaves that grant to you.')
param backupStorageKeyVaultId string = ''

@description('Optional. NCRONTAB (six fields) for scheduled backups; empty means 0 0 2 * * *.')
param backupSchedule string = '0 0 2 * * *'

@description('Optional. NCRONTAB for finishing running operations and pruning; empty means 0 */5 * * * *.')
param housekeepingSchedule string = '0 */5 * * * *'

@description('Optional. Standby sync pairs, <source>=><standby> separated by commas; each standby must be a restore target. Empty means no sync.')
param standbyPairs string = ''

@description('Optional. NCRONTAB for standby sync; empty means 0 0 4 * * *.')
param standbySchedule string = '0 0 4 * * *'

@minValue(1)
@maxValue(30)
@description('Optional. Prune succeeded backups older than this many days.')
param retentionDays int = 30

@minValue(0)
@maxValue(1000)
@description('Optional. Pruning never leaves a service with fewer restorable backups than this.')
param minKeep int = 1

@minValue(1)
@maxValue(720)
@description('Optional. Health turns unhealthy when a service has no restorable backup younger than this many hours.')
param rpoHours int = 26

@minValue(10)
@maxValue(1440)
@description('Optional. A backup or restore still running after this many minutes is marked failed.')
param operationTimeoutMinutes int = 240

@minValue(31)
@maxValue(3650)
@description('Optional. Ledger rows of pruned backups (and failed ones without a blob) older than this many days are deleted.')
param ledgerHistoryDays int = 400

@minValue(1)
@maxValue(64)
@description('Optional. How many services a tick starts or polls at once.')
param maxParallel int = 8

@minValue(1)
@maxValue(365)
@description('Optional. Health warns of certificates that expire within this many days.')
param certWarningDays int = 30

@minValue(31)
@description('Optional. Lifecycle backstop on a new backup account: delete backup blobs older than this many days. Above 30 so that it never removes a backup that can still be restored.')
param backupBlobMaxAgeDays int = 35

@minValue(1)
@maxValue(365)
@description('Optional. Blob and container soft-delete retention, in days, on a new backup account.')
param softDeleteRetentionDays int = 7

@minValue(1)
@maxValue(1000)
@description('Optional. Flex Consumption scale-out limit for the function app.')
param maximumInstanceCount int = 40

@description('Optional. Role definition (GUID) granted to the function identity on every APIM service; defaults to API Management Service Operator Role. Put a narrower custom role here if you have one (see infra/README.md).')
param apimRoleDefinitionId string = 'e022efe7-f5ba-4159-bbe4-b44f577e9b61' // API Management Service Operator Role

// ---------------------------------------------------------------------------------
// Names and derived values
// ---------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName

var functionAppName = 'func-${resourceToken}'
var hostStorageName = 'st${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'

// azd passes an unset environment variable as '' (main.parameters.json), which would
// override a parameter's default: treat '' as "use the default" everywhere.
// Spelled out rather than `empty(x) ? default : x`: the latter's type includes '' and
// would not fit the function module's @allowed list (BCP036).
var accessType = backupAccessType == 'UserAssignedManagedIdentity'
  ? 'UserAssignedManagedIdentity'
  : (backupAccessType == 'AccessKey' ? 'AccessKey' : 'SystemAssignedManagedIdentity')
var containerName = empty(backupContainerName) ? 'apim-backups' : backupContainerName
var ledgerTable = empty(ledgerTableName) ? 'apimbackups' : ledgerTableName
var operationsTable = empty(operationsTableName) ? 'apimoperations' : operationsTableName

// The product accepts commas, semicolons and whitespace between resource IDs; so does this.
var idSeparators = [
  ','
  ';'
  ' '
  '\n'
  '\r'
  '\t'
]
var apimIds = filter(split(apimServiceIds, idSeparators), id => length(trim(id)) > 0)
var restoreIdsGiven = filter(split(restoreTargetIds, idSeparators), id => length(trim(id)) > 0)
var restoreIds = empty(restoreIdsGiven) ? apimIds : restoreIdsGiven
// Every service the function may touch, once each (union() drops duplicates; toLower
// makes two spellings of one resource ID the same, so no role is assigned twice).
var accessIds = union(map(apimIds, id => toLower(id)), map(restoreIds, id => toLower(id)))

var createBackupAccount = empty(existingBackupStorageAccountId)
// Resource IDs are split into subscription ([2]), resource group ([4]) and name (last).
// An unused, empty ID is replaced by a well-formed placeholder first, so that no
// expression ever indexes past the end of an empty split (ARM may evaluate the scope
// of a module whose condition is false).
var placeholderId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rgName}/providers/none/none/none'
var backupAccountIdParts = split(createBackupAccount ? placeholderId : existingBackupStorageAccountId, '/')
var backupAccountSubscriptionId = backupAccountIdParts[2]
var backupAccountResourceGroup = backupAccountIdParts[4]
var backupAccountName = createBackupAccount ? 'stbk${resourceToken}' : last(backupAccountIdParts)
var apimIdentityIdParts = split(empty(apimBackupIdentityId) ? placeholderId : apimBackupIdentityId, '/')
var keyVaultIdParts = split(empty(backupStorageKeyVaultId) ? placeholderId : backupStorageKeyVaultId, '/')

var useApimUserIdentity = accessType == 'UserAssignedManagedIdentity'
var useApimSystemIdentity = accessType == 'SystemAssignedManagedIdentity'
var useAccessKey = accessType == 'AccessKey'

var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6' // Storage Table Data Reader
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7' // Reader
}

// ---------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-func-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
    publisherIdentityId: identity.outputs.resourceId
  }
}

module hostStorage 'app/host-storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: hostStorageName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

// The function's own storage (AzureWebJobsStorage and the deployment package).
module hostStorageRoles 'app/storage-roles.bicep' = {
  name: 'host-storage-roles'
  scope: rg
  params: {
    storageAccountName: hostStorage.outputs.name
    principalId: identity.outputs.principalId
    principalSeed: identity.outputs.resourceId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataOwner
      roles.storageQueueDataContributor
      roles.storageTableDataContributor
    ]
  }
}

module backupStorage 'app/backup-storage.bicep' = {
  name: 'backup-storage-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    name: backupAccountName
    createAccount: createBackupAccount
    location: location
    tags: tags
    allowSharedKeyAccess: useAccessKey
    containerName: containerName
    ledgerTableName: ledgerTable
    operationsTableName: operationsTable
    softDeleteRetentionDays: softDeleteRetentionDays
    backupBlobMaxAgeDays: backupBlobMaxAgeDays
  }
  dependsOn: [
    rg
  ]
}

// The function writes the ledger and reads, lists and deletes (prunes) backup blobs.
// Reader: the CORS pre-check reads the Blob service's properties, a control-plane read
// (blobServices/read) that no data role grants; Reader carries no data access and no keys.
module backupStorageFunctionRoles 'app/storage-roles.bicep' = {
  name: 'backup-storage-func-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: identity.outputs.principalId
    principalSeed: identity.outputs.resourceId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataContributor
      roles.storageTableDataContributor
      roles.reader
    ]
  }
}

module backupStorageUserRoles 'app/storage-roles.bicep' = if (!empty(principalId)) {
  name: 'backup-storage-user-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: principalId
    principalSeed: principalId
    principalType: ''
    roleDefinitionIds: [
      roles.storageBlobDataReader
      roles.storageTableDataReader
    ]
  }
}

// Each APIM service (source or restore target), in its own resource group and
// subscription: the function identity gets the APIM role there, scoped to that one
// service; with SystemAssignedManagedIdentity the module also reads the service's
// identity so that it can be granted access to the backup account below.
module apimAccess 'app/apim-access.bicep' = [
  for (id, i) in accessIds: {
    name: take('apim-access-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      apimName: last(split(id, '/'))
      principalId: identity.outputs.principalId
      principalSeed: identity.outputs.resourceId
      roleDefinitionId: apimRoleDefinitionId
      readSystemIdentity: useApimSystemIdentity
    }
  }
]

// APIM writes (backup) and reads (restore) the blob itself, with its own identity.
module apimSystemIdentityStorageRoles 'app/storage-roles.bicep' = [
  for (id, i) in accessIds: if (useApimSystemIdentity) {
    name: take('apim-blob-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
    params: {
      storageAccountName: backupStorage.outputs.name
      // The principal id is a runtime value: it is a module parameter here, and the
      // assignment's name is derived from the service's resource ID instead (BCP120).
      principalId: apimAccess[i].outputs.systemIdentityPrincipalId
      principalSeed: id
      principalType: 'ServicePrincipal'
      roleDefinitionIds: [
        roles.storageBlobDataContributor
      ]
    }
  }
]

module apimUserIdentity 'app/user-identity-lookup.bicep' = if (useApimUserIdentity) {
  name: 'apim-backup-identity-${resourceToken}'
  scope: resourceGroup(apimIdentityIdParts[2], apimIdentityIdParts[4])
  params: {
    name: last(apimIdentityIdParts)
  }
}

module apimUserIdentityStorageRoles 'app/storage-roles.bicep' = if (useApimUserIdentity) {
  name: 'apim-backup-identity-blob-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: useApimUserIdentity ? apimUserIdentity.outputs.principalId : ''
    principalSeed: apimBackupIdentityId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataContributor
    ]
  }
}

module keyVaultAccess 'app/key-vault-access.bicep' = if (useAccessKey && !empty(backupStorageKeyVaultId)) {
  name: 'backup-key-vault-access-${resourceToken}'
  scope: resourceGroup(keyVaultIdParts[2], keyVaultIdParts[4])
  params: {
    keyVaultName: last(keyVaultIdParts)
    principalId: identity.outputs.principalId
    principalSeed: identity.outputs.resourceId
  }
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    hostStorageName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: maximumInstanceCount
    apimServices: join(apimIds, ',')
    restoreTargets: join(restoreIds, ',')
    backupStorageAccountName: backupStorage.outputs.name
    backupBlobServiceUri: backupStorage.outputs.blobServiceUri
    backupTableServiceUri: backupStorage.outputs.tableServiceUri
    backupContainerName: containerName
    backupAccessType: accessType
    backupIdentityClientId: useApimUserIdentity ? apimUserIdentity.outputs.clientId : ''
    backupStorageKeySecretUri: useAccessKey ? backupStorageKeySecretUri : ''
    ledgerTableName: ledgerTable
    operationsTableName: operationsTable
    backupSchedule: backupSchedule
    housekeepingSchedule: housekeepingSchedule
    standbyPairs: standbyPairs
    standbySchedule: standbySchedule
    retentionDays: retentionDays
    minKeep: minKeep
    rpoHours: rpoHours
    operationTimeoutMinutes: operationTimeoutMinutes
    ledgerHistoryDays: ledgerHistoryDays
    maxParallel: maxParallel
    certWarningDays: certWarningDays
  }
  // The host starts as soon as the site exists: let it find its roles in place. A Key
  // Vault reference resolved before its role exists is not retried for hours.
  dependsOn: [
    hostStorageRoles
    backupStorageFunctionRoles
    keyVaultAccess
  ]
}

// ---------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env). No keys, no connection strings.
// ---------------------------------------------------------------------------------

@description('Required. Region of the deployment.')
output AZURE_LOCATION string = location

@description('Required. Tenant of the deployment.')
output AZURE_TENANT_ID string = tenant().tenantId

@description('Required. Resource group holding the function app.')
output AZURE_RESOURCE_GROUP string = rg.name

@description('Required. Name of the function app.')
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Required. Base URL of the function app (routes are under /api).')
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url

@description('Required. Client id of the function app\'s user-assigned identity.')
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId

@description('Required. Name of the backup storage account.')
output BACKUP_STORAGE_ACCOUNT string = backupStorage.outputs.name

@description('Required. Blob container that holds the backups.')
output BACKUP_CONTAINER string = containerName

@description('Required. Table holding the backup ledger.')
output LEDGER_TABLE string = ledgerTable
