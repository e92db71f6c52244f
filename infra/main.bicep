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

// Regions that offer Flex Consumption: the list of Microsoft's own Flex Consumption azd
// quickstart (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep),
// without its canary region eastus2euap. A region outside this list fails here, by name,
// instead of half-way through the deployment. Microsoft Learn publishes no fixed list
// ("View currently supported regions": `az functionapp list-flexconsumption-locations`
// answers for today); add a region that command lists, and tests/infra's copy with it.
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@description('Required. Azure region for every new resource; only regions that offer Flex Consumption.')
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

@description('Optional. With AccessKey only: the URI of the Key Vault secret that holds the backup account key (the vault\'s URI followed by secrets/<name>). The key itself never passes through this template.')
param backupStorageKeySecretUri string = ''

@description('Optional. With AccessKey only: resource ID of the (RBAC-mode) Key Vault holding that secret, to grant the function identity Key Vault Secrets User on that one secret and collect the vault\'s audit log; empty leaves both to you.')
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

@minValue(0)
@maxValue(1440)
@description('Optional. A change backup starts once a service has had no configuration change for this many minutes (0: at the next housekeeping tick).')
param changeQuietMinutes int = 15

@minValue(1)
@maxValue(10080)
@description('Optional. ...or once its oldest unprotected change is this many minutes old.')
param changeMaxDelayMinutes int = 60

@minValue(0)
@maxValue(288)
@description('Optional. At most this many change backups of a service in any 24 hours (0: none).')
param changeBackupsPerDay int = 12

@minValue(0)
@maxValue(43200)
@description('Optional. Health turns unhealthy when a change stays unprotected longer than this many minutes (0: off).')
param changeRpoMinutes int = 0

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
param softDeleteRetentionDays int = 14

// --- ransomware-safe backups (infra/README.md, "Ransomware-safe backups") ---

@allowed([
  ''
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Optional. Redundancy of a new backup account: ZRS (three zones) or GRS/GZRS (a copy in the paired region); never LRS. Empty means Standard_GRS.')
param backupStorageSku string = 'Standard_GRS'

@description('Optional. Blob versioning on a new backup account.')
param backupBlobVersioning bool = true

// Opt-in: whether APIM's own write of a backup succeeds under a time-based retention
// policy is not documented anywhere (infra/README.md, "Immutability: opt-in"). Until a
// deployment has shown a backup and a restore succeeding under it, the policy must not
// be able to break every backup. 'locked': Resource Manager refuses a PUT of a locked
// policy, so once you have locked it a re-provision must not deploy it again.
@allowed([
  ''
  'off'
  'on'
  'locked'
])
@description('Optional. Time-based immutability (write once) on the backup container: on deploys the policy (unlocked, backupImmutabilityDays); locked means you have locked it, and it is left alone (a locked policy cannot be deployed again); off or empty (the default) deploys none and leaves a policy already on the container as it is. Turn it on only after one backup and one restore have succeeded under it (infra/README.md).')
param backupImmutability string = 'off'

@minValue(1)
@maxValue(30)
@description('Optional. With backupImmutability on: how many days a backup cannot be overwritten or deleted by anyone. Capped at retentionDays so that pruning can always delete.')
param backupImmutabilityDays int = 30

@description('Optional. CanNotDelete lock on a new backup account (remove it before azd down).')
param backupDeleteLock bool = true

@description('Optional. Network lockdown of a new backup account: default deny, trusted Azure services (APIM) allowed. The function then needs functionSubnetId (VNet integration) with the Microsoft.Storage service endpoint, or a private endpoint you add.')
param backupNetworkLockdown bool = false

@description('Optional. Resource ID of a subnet delegated to Microsoft.App/environments for the function app\'s VNet integration; it is also allowed through the backup account\'s firewall.')
param functionSubnetId string = ''

// --- least privilege on APIM ---

// A custom role definition replicates with a delay: assigned in the deployment that
// creates it, the assignment can fail with RoleDefinitionDoesNotExist. So the first
// azd up relies on built-in roles only, and the custom roles come in two later steps,
// each of whose deployments assigns only roles that existed before it started
// (infra/README.md, "APIM roles: built-in first, custom when defined").
@allowed([
  ''
  'builtin'
  'define'
  'custom'
])
@description('Optional. The function\'s roles on the APIM services. builtin (the default; also empty): the built-in API Management Service Operator Role and Reader, nothing to replicate. define: create the two custom roles (exactly the APIM actions the product uses) and assign no APIM role yet. custom: assign the custom roles, created by an earlier define run (backup on sources, restore on restore targets only).')
param apimRoles string = 'builtin'

// --- callers without keys ---

@allowed([
  ''
  'functionKey'
  'entra'
])
@description('Optional. API_AUTH: functionKey (callers send function keys) or entra (App Service authentication with Entra ID; callers send tokens). Empty means functionKey.')
param apiAuth string = 'functionKey'

@description('Optional. With entra: application (client) id of the API\'s app registration.')
param entraClientId string = ''

@description('Optional. With entra: application ID URI of that app registration (api://...).')
param entraAppIdUri string = ''

// --- alerts ---

@description('Optional. E-mail addresses (comma-separated) for the alerts on the product\'s signals; empty creates no action group (the rules still fire, visible in Azure Monitor).')
param alertEmail string = ''

@description('Optional. Resource IDs of existing action groups (comma-separated) that also receive every alert.')
param alertActionGroupIds string = ''

@description('Optional. Deploy the Azure Monitor workbook "APIM backup" (RPO, the last 30 nights, durations and sizes, restore drills, debts, signals) over the app\'s logs; false deploys none.')
param deployWorkbook bool = true

@allowed([
  ''
  'off'
  'on'
])
@description('Optional. on: change backups from Event Grid (docs/change-backups.md): a system topic on each APIM service in apimServiceIds and one on each of their resource groups, subscribed to the function config_changed, with a dead-letter container in the backup account. Turn it on once the app is deployed (azd up first): Event Grid refuses a subscription to a function that does not exist yet. Empty or off: none.')
param changeEvents string = 'off'

@minValue(1)
@maxValue(1000)
@description('Optional. Flex Consumption scale-out limit for the function app.')
param maximumInstanceCount int = 40

// The instance sizes Flex Consumption offers (Microsoft Learn, "Azure Functions Flex
// Consumption plan hosting", Instance memory); 2,048 MB is Microsoft's default for most
// apps. Not measured for this app on Azure: try 512 MB only after watching memory.
@allowed([
  512
  2048
  4096
])
@description('Optional. Flex Consumption memory per instance, in MB: 512, 2048 or 4096.')
param instanceMemoryMB int = 2048


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
// would not fit the function module's @allowed list (BCP036). On one line: checkov's
// Bicep parser cannot read a ternary broken over lines.
var accessType = backupAccessType == 'UserAssignedManagedIdentity' ? 'UserAssignedManagedIdentity' : (backupAccessType == 'AccessKey' ? 'AccessKey' : 'SystemAssignedManagedIdentity')
var apiAuthMode = apiAuth == 'entra' ? 'entra' : 'functionKey'
var backupSku = empty(backupStorageSku) ? 'Standard_GRS' : backupStorageSku
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
// Every resource ID is normalised once, here, and every name, scope and setting below is
// taken from the normalised form, never from a parameter as given: empty segments are
// dropped, so an ID with a trailing (or doubled) slash, which the product accepts
// ('.../service/contoso/'), gives the same subscription ([2]), resource group ([4]) and
// name (last) as the plain ID, instead of an empty name (an APIM service called '' and a
// blob pattern '-????????T??????Z.apimbackup'). One expression per ID, inline: checkov's
// Bicep parser reads no user-defined function.
var apimIds = [for raw in filter(split(apimServiceIds, idSeparators), token => length(trim(token)) > 0): '/${join(filter(split(raw, '/'), segment => length(segment) > 0), '/')}']
var restoreIdsGiven = [for raw in filter(split(restoreTargetIds, idSeparators), token => length(trim(token)) > 0): '/${join(filter(split(raw, '/'), segment => length(segment) > 0), '/')}']
var restoreIds = empty(restoreIdsGiven) ? apimIds : restoreIdsGiven
// Every service the function may touch, once each (union() drops duplicates; toLower
// makes two spellings of one resource ID the same, so no role is assigned twice).
// For-expressions rather than map(): checkov's Bicep parser does not read map().
var apimIdsLower = [for id in apimIds: toLower(id)]
var restoreIdsLower = [for id in restoreIds: toLower(id)]
var accessIds = union(apimIdsLower, restoreIdsLower)
// Where the custom APIM roles may be assigned: the services' resource groups, plus this
// deployment's subscription, where the definitions are created (a definition's own
// scope should be among its assignable scopes). Assignable is not assigned: the
// function gets them on its services only.
var sourceGroups = [for id in apimIdsLower: '/subscriptions/${split(id, '/')[2]}/resourcegroups/${split(id, '/')[4]}']
var restoreGroups = [for id in restoreIdsLower: '/subscriptions/${split(id, '/')[2]}/resourcegroups/${split(id, '/')[4]}']
var sourceScopes = union([subscription().id], sourceGroups)
var restoreScopes = union([subscription().id], restoreGroups)
var operatorRole = 'e022efe7-f5ba-4159-bbe4-b44f577e9b61' // API Management Service Operator Role
var apimRoleMode = apimRoles == 'custom' ? 'custom' : (apimRoles == 'define' ? 'define' : 'builtin')
// Built-in: Operator has backup, restore and service/*/read; Reader adds the read of the
// service's Azure Monitor diagnostic settings (Microsoft.Insights, outside service/*), which
// the settings manifest copies. Reader carries reads only: no keys, no secrets.
var builtinApimRoles = [
  operatorRole
  roles.reader
]
var extraActionGroupIds = [for raw in filter(split(alertActionGroupIds, idSeparators), token => length(trim(token)) > 0): '/${join(filter(split(raw, '/'), segment => length(segment) > 0), '/')}']

var createBackupAccount = empty(trim(existingBackupStorageAccountId))
var existingBackupAccountId = '/${join(filter(split(trim(existingBackupStorageAccountId), '/'), segment => length(segment) > 0), '/')}'
var apimBackupIdentity = '/${join(filter(split(trim(apimBackupIdentityId), '/'), segment => length(segment) > 0), '/')}'
var backupKeyVaultId = '/${join(filter(split(trim(backupStorageKeyVaultId), '/'), segment => length(segment) > 0), '/')}'
var subnetId = empty(trim(functionSubnetId)) ? '' : '/${join(filter(split(trim(functionSubnetId), '/'), segment => length(segment) > 0), '/')}'
// Resource IDs are split into subscription ([2]), resource group ([4]) and name (last).
// An unused, empty ID is replaced by a well-formed placeholder first, so that no
// expression ever indexes past the end of an empty split (ARM may evaluate the scope
// of a module whose condition is false).
var placeholderId = '/subscriptions/${subscription().subscriptionId}/resourceGroups/${rgName}/providers/none/none/none'
var backupAccountIdParts = split(createBackupAccount ? placeholderId : existingBackupAccountId, '/')
var backupAccountSubscriptionId = backupAccountIdParts[2]
var backupAccountResourceGroup = backupAccountIdParts[4]
var backupAccountName = createBackupAccount ? 'stbk${resourceToken}' : last(backupAccountIdParts)
var apimIdentityIdParts = split(empty(trim(apimBackupIdentityId)) ? placeholderId : apimBackupIdentity, '/')
var keyVaultIdParts = split(empty(trim(backupStorageKeyVaultId)) ? placeholderId : backupKeyVaultId, '/')
// https://<vault>.<dns suffix>/secrets/<name>[/<version>]: the name is the fifth segment.
var keyVaultSecretName = length(split(backupStorageKeySecretUri, '/')) > 4 ? split(backupStorageKeySecretUri, '/')[4] : 'none'
// Immutability never outlasts retention: pruning must be able to delete a due blob. 0 deploys
// no policy (backup-storage.bicep): with off, and with locked (the locked policy stays).
var immutabilityDays = backupImmutability == 'on' ? min(backupImmutabilityDays, retentionDays) : 0

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
    skuName: backupSku
    blobVersioning: backupBlobVersioning
    softDeleteRetentionDays: softDeleteRetentionDays
    immutabilityDays: immutabilityDays
    backupBlobMaxAgeDays: backupBlobMaxAgeDays
    deleteLock: backupDeleteLock
    restrictNetworkAccess: backupNetworkLockdown
    allowedSubnetIds: empty(subnetId) ? [] : [subnetId]
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
  dependsOn: [
    rg
  ]
}

// The function writes the ledger and reads, lists and deletes (prunes) backup blobs:
// data roles on the backup container and on the two tables, not on the account.
module backupContainerFunctionRoles 'app/container-roles.bicep' = {
  name: 'backup-container-func-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    containerName: containerName
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataContributor
    ]
  }
}

module backupTableFunctionRoles 'app/table-roles.bicep' = {
  name: 'backup-table-func-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    tableNames: [
      ledgerTable
      operationsTable
    ]
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: roles.storageTableDataContributor
  }
}

// Reader: the CORS pre-check reads the Blob service's properties, a control-plane read
// (blobServices/read) that no data role grants; Reader carries no data access and no keys.
module backupStorageFunctionReader 'app/storage-roles.bicep' = {
  name: 'backup-storage-func-reader-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.reader
    ]
  }
}

module backupContainerUserRoles 'app/container-roles.bicep' = if (!empty(principalId)) {
  name: 'backup-container-user-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    containerName: containerName
    principalId: principalId
    principalType: ''
    roleDefinitionIds: [
      roles.storageBlobDataReader
    ]
  }
}

module backupTableUserRoles 'app/table-roles.bicep' = if (!empty(principalId)) {
  name: 'backup-table-user-roles-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    tableNames: [
      ledgerTable
      operationsTable
    ]
    principalId: principalId
    principalType: ''
    roleDefinitionId: roles.storageTableDataReader
  }
}

// The function's custom APIM roles: exactly the actions it calls (apim-roles.bicep), restore
// only on restore targets. Created (or updated) with define and custom; assigned with
// custom only, by which time an earlier define run has let them replicate.
module apimRoleDefinitions 'app/apim-roles.bicep' = if (apimRoleMode != 'builtin') {
  name: 'apim-roles-${resourceToken}'
  params: {
    nameSuffix: '${environmentName}-${resourceToken}'
    sourceScopes: sourceScopes
    restoreScopes: restoreScopes
  }
}

var sourceRoleId = apimRoleDefinitions.?outputs.sourceRoleId ?? operatorRole
var restoreRoleId = apimRoleDefinitions.?outputs.restoreRoleId ?? operatorRole

// Each APIM service (source or restore target), in its own resource group and
// subscription: the function identity gets its roles there, scoped to that one service;
// with SystemAssignedManagedIdentity the module also reads the service's identity so
// that it can be granted access to the backup container below.
module apimAccess 'app/apim-access.bicep' = [
  for (id, i) in accessIds: {
    name: take('apim-access-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      apimName: last(split(id, '/'))
      principalId: identity.outputs.principalId
      roleDefinitionIds: apimRoleMode == 'custom' ? union(contains(apimIdsLower, id) ? [sourceRoleId] : [], contains(restoreIdsLower, id) ? [restoreRoleId] : []) : (apimRoleMode == 'define' ? [] : builtinApimRoles)
      readSystemIdentity: useApimSystemIdentity
    }
  }
]

// APIM writes (backup) and reads (restore) the blob itself, with its own identity: each
// service's system-assigned identity on the backup container only, and only on that
// service's own backups, so one service's policy author cannot read or overwrite another
// service's backups. A backup's blob name is '<service>-<yyyyMMdd>T<HHmmss>Z.apimbackup'
// with the service name in lower case (shared/rules/naming.py); the condition matches exactly
// that shape (StringLike: '?' is one character, the whole name must match). A prefix
// would not do: service names contain hyphens, and 'contoso-' also starts every backup
// of 'contoso-dr'. APIM touches no other blob: the settings manifest beside a backup is
// written and read by the function, with its own identity. A restore target restores
// other services' backups too (standby sync, a restore into another region), and APIM
// reads them with the target's identity: a restore target may also read, never write or
// delete, the backups of every service in apimServiceIds.
var backupNameStamp = '-????????T??????Z.apimbackup'
var sourcePatterns = [for id in apimIdsLower: '${last(split(id, '/'))}${backupNameStamp}']

module apimSystemIdentityStorageRoles 'app/container-roles.bicep' = [
  for (id, i) in accessIds: if (useApimSystemIdentity) {
    name: take('apim-blob-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
    params: {
      storageAccountName: backupStorage.outputs.name
      containerName: containerName
      principalId: apimAccess[i].outputs.systemIdentityPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionIds: [
        roles.storageBlobDataContributor
      ]
      blobPattern: '${last(split(id, '/'))}${backupNameStamp}'
      readPatterns: contains(restoreIdsLower, id) ? sourcePatterns : []
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

// One user-assigned identity serves every service: it gets the container, without a
// per-service condition (use SystemAssignedManagedIdentity for that).
module apimUserIdentityStorageRoles 'app/container-roles.bicep' = if (useApimUserIdentity) {
  name: 'apim-backup-identity-blob-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    containerName: containerName
    principalId: apimUserIdentity.?outputs.principalId ?? ''
    principalType: 'ServicePrincipal'
    roleDefinitionIds: [
      roles.storageBlobDataContributor
    ]
  }
}

module keyVaultAccess 'app/key-vault-access.bicep' = if (useAccessKey && !empty(backupStorageKeyVaultId) && !empty(backupStorageKeySecretUri)) {
  name: 'backup-key-vault-access-${resourceToken}'
  scope: resourceGroup(keyVaultIdParts[2], keyVaultIdParts[4])
  params: {
    keyVaultName: last(keyVaultIdParts)
    secretName: keyVaultSecretName
    principalId: identity.outputs.principalId
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
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
    instanceMemoryMB: instanceMemoryMB
    apimServices: join(apimIds, ',')
    restoreTargets: join(restoreIds, ',')
    backupStorageAccountName: backupStorage.outputs.name
    backupBlobServiceUri: backupStorage.outputs.blobServiceUri
    backupTableServiceUri: backupStorage.outputs.tableServiceUri
    backupContainerName: containerName
    backupAccessType: accessType
    backupIdentityClientId: apimUserIdentity.?outputs.clientId ?? ''
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
    changeQuietMinutes: changeQuietMinutes
    changeMaxDelayMinutes: changeMaxDelayMinutes
    changeBackupsPerDay: changeBackupsPerDay
    changeRpoMinutes: changeRpoMinutes
    operationTimeoutMinutes: operationTimeoutMinutes
    ledgerHistoryDays: ledgerHistoryDays
    maxParallel: maxParallel
    certWarningDays: certWarningDays
    apiAuth: apiAuthMode
    entraClientId: entraClientId
    entraAppIdUri: entraAppIdUri
    virtualNetworkSubnetId: subnetId
  }
  // The host starts as soon as the site exists: let it find its roles in place. A Key
  // Vault reference resolved before its role exists is not retried for hours.
  dependsOn: [
    hostStorageRoles
    backupContainerFunctionRoles
    backupTableFunctionRoles
    backupStorageFunctionReader
    keyVaultAccess
  ]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    nameSuffix: resourceToken
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    extraActionGroupIds: extraActionGroupIds
  }
}

module workbook 'app/workbook.bicep' = if (deployWorkbook) {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    nameSuffix: resourceToken
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    rpoHours: rpoHours
  }
}

// Change backups from Event Grid (docs/change-backups.md), with changeEvents on: one
// system topic per APIM source service (APIM's own events) and one per resource group
// holding such services (Resource Manager's writes: policies, named values, backends and
// certificates emit no APIM event), each subscribed to the function config_changed.
// Undeliverable events (after a day of retries) go to a container of the backup account,
// written by each topic's own identity, with a data role on that container only.
var useChangeEvents = changeEvents == 'on'
var deadLetterContainerName = 'change-events-deadletter'
var changeGroups = union(sourceGroups, sourceGroups) // once each
var configChangedFunctionId = '${rg.id}/providers/Microsoft.Web/sites/${functionAppName}/functions/config_changed'
// What shared/rules/changes.py counts as a change (tests/infra keeps the lists equal).
var apimChangeEventTypes = [
  'Microsoft.ApiManagement.APICreated'
  'Microsoft.ApiManagement.APIUpdated'
  'Microsoft.ApiManagement.APIDeleted'
  'Microsoft.ApiManagement.APIReleaseCreated'
  'Microsoft.ApiManagement.APIReleaseUpdated'
  'Microsoft.ApiManagement.APIReleaseDeleted'
  'Microsoft.ApiManagement.ProductCreated'
  'Microsoft.ApiManagement.ProductUpdated'
  'Microsoft.ApiManagement.ProductDeleted'
  'Microsoft.ApiManagement.SubscriptionCreated'
  'Microsoft.ApiManagement.SubscriptionUpdated'
  'Microsoft.ApiManagement.SubscriptionDeleted'
  'Microsoft.ApiManagement.UserCreated'
  'Microsoft.ApiManagement.UserUpdated'
  'Microsoft.ApiManagement.UserDeleted'
  'Microsoft.ApiManagement.GatewayCreated'
  'Microsoft.ApiManagement.GatewayUpdated'
  'Microsoft.ApiManagement.GatewayDeleted'
  'Microsoft.ApiManagement.GatewayAPIAdded'
  'Microsoft.ApiManagement.GatewayAPIRemoved'
  'Microsoft.ApiManagement.GatewayCertificateAuthorityCreated'
  'Microsoft.ApiManagement.GatewayCertificateAuthorityUpdated'
  'Microsoft.ApiManagement.GatewayCertificateAuthorityDeleted'
  'Microsoft.ApiManagement.GatewayHostnameConfigurationCreated'
  'Microsoft.ApiManagement.GatewayHostnameConfigurationUpdated'
  'Microsoft.ApiManagement.GatewayHostnameConfigurationDeleted'
]
var armChangeEventTypes = [
  'Microsoft.Resources.ResourceWriteSuccess'
  'Microsoft.Resources.ResourceDeleteSuccess'
  'Microsoft.Resources.ResourceActionSuccess'
]
// Resource Manager's events of the services only (a prefix: a sibling whose name starts
// with a service's is dropped by the function's rule), and never the product's own
// backups and restores (actions too). Event Grid takes at most 25 filter values in all:
// past 23 services (23 + the 2 own actions) only the second filter stays, and the
// rule drops the rest.
var serviceSubjectFilter = {
  operatorType: 'StringBeginsWith'
  key: 'subject'
  values: apimIdsLower
}
var ownActionsFilter = {
  operatorType: 'StringNotEndsWith'
  key: 'data.operationName'
  values: [
    '/backup/action'
    '/restore/action'
  ]
}
var armAdvancedFilters = length(apimIdsLower) <= 23 ? [serviceSubjectFilter, ownActionsFilter] : [ownActionsFilter]

module changeDeadLetterContainer 'app/blob-container.bicep' = if (useChangeEvents) {
  name: 'change-events-deadletter-${resourceToken}'
  scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
  params: {
    storageAccountName: backupStorage.outputs.name
    containerName: deadLetterContainerName
  }
}

module changeTopicsApim 'app/change-topic-apim.bicep' = [
  for (id, i) in apimIdsLower: if (useChangeEvents) {
    name: take('change-topic-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      apimName: last(split(id, '/'))
      tags: tags
    }
  }
]

module changeTopicsGroup 'app/change-topic-group.bicep' = [
  for (group, i) in changeGroups: if (useChangeEvents) {
    name: take('change-topic-rg-${i}-${uniqueString(group, resourceToken)}', 64)
    scope: resourceGroup(split(group, '/')[2], split(group, '/')[4])
    params: {
      tags: tags
    }
  }
]

module changeDeadLetterRolesApim 'app/container-roles.bicep' = [
  for (id, i) in apimIdsLower: if (useChangeEvents) {
    name: take('change-dl-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
    params: {
      storageAccountName: backupStorage.outputs.name
      containerName: changeDeadLetterContainer.?outputs.name ?? deadLetterContainerName
      principalId: changeTopicsApim[i].?outputs.principalId ?? ''
      principalType: 'ServicePrincipal'
      roleDefinitionIds: [
        roles.storageBlobDataContributor
      ]
    }
  }
]

module changeDeadLetterRolesGroup 'app/container-roles.bicep' = [
  for (group, i) in changeGroups: if (useChangeEvents) {
    name: take('change-dl-rg-${i}-${uniqueString(group, resourceToken)}', 64)
    scope: resourceGroup(backupAccountSubscriptionId, backupAccountResourceGroup)
    params: {
      storageAccountName: backupStorage.outputs.name
      containerName: changeDeadLetterContainer.?outputs.name ?? deadLetterContainerName
      principalId: changeTopicsGroup[i].?outputs.principalId ?? ''
      principalType: 'ServicePrincipal'
      roleDefinitionIds: [
        roles.storageBlobDataContributor
      ]
    }
  }
]

module changeSubscriptionsApim 'app/change-subscription.bicep' = [
  for (id, i) in apimIdsLower: if (useChangeEvents) {
    name: take('change-sub-${i}-${uniqueString(id, resourceToken)}', 64)
    scope: resourceGroup(split(id, '/')[2], split(id, '/')[4])
    params: {
      topicName: changeTopicsApim[i].?outputs.name ?? ''
      functionResourceId: configChangedFunctionId
      includedEventTypes: apimChangeEventTypes
      deadLetterAccountId: backupStorage.outputs.resourceId
      deadLetterContainerName: deadLetterContainerName
    }
    dependsOn: [
      changeDeadLetterRolesApim[i]
      functionApp
    ]
  }
]

module changeSubscriptionsGroup 'app/change-subscription.bicep' = [
  for (group, i) in changeGroups: if (useChangeEvents) {
    name: take('change-sub-rg-${i}-${uniqueString(group, resourceToken)}', 64)
    scope: resourceGroup(split(group, '/')[2], split(group, '/')[4])
    params: {
      topicName: changeTopicsGroup[i].?outputs.name ?? ''
      functionResourceId: configChangedFunctionId
      includedEventTypes: armChangeEventTypes
      advancedFilters: armAdvancedFilters
      deadLetterAccountId: backupStorage.outputs.resourceId
      deadLetterContainerName: deadLetterContainerName
    }
    dependsOn: [
      changeDeadLetterRolesGroup[i]
      functionApp
    ]
  }
]

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
