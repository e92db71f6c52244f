// The storage account APIM writes backups into and the function keeps its ledger in.
// Deployed into the account's resource group. With createAccount the account is made
// here, hardened for APIM backups (see infra/README.md, "Ransomware-safe backups");
// otherwise an existing account is used as it is and only the container (with its
// immutability policy), the tables and the diagnostic settings are added: its
// redundancy, network rules, blob service settings (CORS, versioning, soft delete),
// lifecycle policy and locks belong to its owner and are not overwritten. The
// product's pre-checks still refuse a backup while CORS is enabled (409 CorsEnabled).
//
// Classic template format on purpose: this file pairs the created account with an
// `existing` reference to the same account. Anything that switches the compiler to
// languageVersion 2.0 (a user-defined function or type, a typed variable, a nullable
// type, a module without a name, an import) would make both entries resources with one
// ID, which Resource Manager refuses ("defined multiple times"). tests/infra checks it.

@description('Required. Name of the storage account (new or existing).')
param name string

@description('Required. Whether to create the account (false: use an existing one).')
param createAccount bool

@description('Required. Azure region of a new account.')
param location string

@description('Optional. Tags for a new account.')
param tags object = {}

@description('Optional. Allow account-key access on a new account; only for the AccessKey access type.')
param allowSharedKeyAccess bool = false

@description('Required. Blob container for backups.')
param containerName string

@description('Required. Table for the backup ledger.')
param ledgerTableName string

@description('Required. Table for restores, locks and other bookkeeping.')
param operationsTableName string

// No @allowed here (main.bicep's list, with '' for azd's unset variable, would not fit
// it); main.bicep allows only these: Standard_ZRS, Standard_GRS, Standard_RAGRS,
// Standard_GZRS, Standard_RAGZRS. No LRS: one datacenter is not a disaster-recovery copy.
@description('Optional. Redundancy of a new account: zone-redundant (ZRS) or geo-redundant (GRS, GZRS; RA- adds read access in the paired region).')
param skuName string = 'Standard_GRS'

@description('Optional. Blob versioning on a new account: an overwritten or deleted backup stays as a previous version (deleted by the lifecycle rule below).')
param blobVersioning bool = true

@minValue(1)
@maxValue(365)
@description('Optional. Blob and container soft-delete retention in days (new account).')
param softDeleteRetentionDays int = 14

@minValue(0)
@maxValue(30)
@description('Optional. Time-based immutability (write once, read many) on the backup container, in days since each blob was written; 0 deploys no policy and leaves the container\'s policy as it is (none on a new container).')
param immutabilityDays int = 0

@minValue(31)
@description('Optional. Lifecycle backstop: delete backup blobs (and previous versions) older than this many days (new account).')
param backupBlobMaxAgeDays int = 35

@description('Optional. Put a CanNotDelete lock on a new account, so that neither the account nor its containers can be deleted through Resource Manager until the lock is removed.')
param deleteLock bool = true

@description('Optional. Network lockdown of a new account: deny by default, allow only trusted Azure services (APIM with its system-assigned identity) and the subnets in allowedSubnetIds.')
param restrictNetworkAccess bool = false

@description('Optional. With restrictNetworkAccess: subnet resource IDs allowed through the firewall (the function app\'s integration subnet, with the Microsoft.Storage service endpoint).')
param allowedSubnetIds array = []

@description('Optional. Resource ID of the Log Analytics workspace that receives the blob and table audit logs; empty sends none.')
param logAnalyticsWorkspaceId string = ''

var subnetRules = [for id in allowedSubnetIds: {
  id: id
  action: 'Allow'
}]

resource createdAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = if (createAccount) {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // The firewall (networkAcls) does the lockdown; 'Disabled' would also shut out the
    // trusted-services bypass that APIM's backup relies on.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // APIM reaches a firewalled account only as a trusted Azure service, with its
      // system-assigned identity (a user-assigned identity or an account key does not
      // pass the firewall).
      bypass: 'AzureServices'
      defaultAction: restrictNetworkAccess ? 'Deny' : 'Allow'
      virtualNetworkRules: subnetRules
      ipRules: []
    }
  }
}

// Both paths read the account through this reference; for a new account it resolves
// after createdAccount exists (the children below depend on it explicitly).
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: name
}

resource createdBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = if (createAccount) {
  parent: createdAccount
  name: 'default'
  properties: {
    // No CORS rules: with any rule on the Blob service APIM's backup fails with
    // "Invalid parameter ... backupStorageAccount".
    cors: {
      corsRules: []
    }
    isVersioningEnabled: blobVersioning
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
  dependsOn: [
    createdBlobService
  ]
}

// Write once, read many while a backup can still be restored: nobody (no data role, no
// key, no SAS) can overwrite or delete a backup blob younger than immutabilityDays.
// main.bicep passes min(backupImmutabilityDays, retentionDays) only when the deployer
// opts in, so the policy has always lapsed when pruning wants a blob gone; a delete
// refused meanwhile is reported by pruning and retried on the next pass. The policy starts
// unlocked (an administrator can still shorten or delete it); lock it once tested
// (infra/README.md).
// allowProtectedAppendWritesAll: new blocks may be added to a block or append blob under
// the policy; existing blocks can still be neither changed nor deleted, and no blob can be
// overwritten or deleted. Microsoft Learn ("Time-based retention policies for immutable
// blob data") names this the setting that lets Microsoft services which append blocks
// through internal APIs write under a policy; how APIM writes a backup is not documented,
// and without it a writer that creates the blob and then adds blocks is refused. (It and
// allowProtectedAppendWrites, append blobs only, are mutually exclusive.)
resource immutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if (immutabilityDays > 0) {
  parent: container
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWritesAll: true
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
  dependsOn: [
    createdAccount
  ]
}

resource operationsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: operationsTableName
  dependsOn: [
    createdAccount
  ]
}

// Backstop only: the function prunes by the ledger (RETENTION_DAYS <= 30). A backup
// cannot be restored after 30 days, so deleting blobs older than backupBlobMaxAgeDays
// (> 30) never removes a restorable backup; with versioning, a pruned blob lives on as a
// previous version, and that version goes the same way. Lifecycle filters match blob
// types and name prefixes (which start with the container name), never suffixes.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (createAccount) {
  parent: createdAccount
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-apim-backups'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${containerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: backupBlobMaxAgeDays
                }
              }
              version: {
                delete: {
                  daysAfterCreationGreaterThan: backupBlobMaxAgeDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    container
  ]
}

resource deleteLockOnAccount 'Microsoft.Authorization/locks@2020-05-01' = if (createAccount && deleteLock) {
  name: 'apim-backups-cannot-delete'
  scope: createdAccount
  properties: {
    level: 'CanNotDelete'
    notes: 'Holds the APIM disaster-recovery backups. Remove this lock deliberately before deleting the account (azd down).'
  }
  dependsOn: [
    lifecycle
    immutability
  ]
}

// Who read, wrote or deleted a backup or a ledger row: every data-plane request, with
// the caller's identity, in the workspace.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'apim-backup-audit'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
  dependsOn: [
    createdBlobService
  ]
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'apim-backup-audit'
  scope: tableService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
  dependsOn: [
    createdAccount
  ]
}

@description('Required. Name of the account.')
output name string = name

@description('Required. Resource ID of the account.')
output resourceId string = account.id

// Endpoints come from the account itself (not built from the name), so accounts with
// Azure DNS zone endpoints and sovereign clouds work too. Trailing slash removed, inline
// (a user-defined function here would switch the file's template format, see the top).
@description('Required. Blob service URI, for BACKUP_STORAGE__blobServiceUri.')
output blobServiceUri string = endsWith(account.properties.primaryEndpoints.blob, '/') ? substring(account.properties.primaryEndpoints.blob, 0, length(account.properties.primaryEndpoints.blob) - 1) : account.properties.primaryEndpoints.blob

@description('Required. Table service URI, for BACKUP_STORAGE__tableServiceUri.')
output tableServiceUri string = endsWith(account.properties.primaryEndpoints.table, '/') ? substring(account.properties.primaryEndpoints.table, 0, length(account.properties.primaryEndpoints.table) - 1) : account.properties.primaryEndpoints.table
