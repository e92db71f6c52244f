// The storage account APIM writes backups into and the function keeps its ledger in.
// Deployed into the account's resource group. With createAccount the account is made
// here, hardened for APIM backups; otherwise an existing account is used as it is and
// only the container and tables are added: its blob service settings (CORS, soft
// delete) and lifecycle policy belong to its owner and are not overwritten. The
// product's pre-checks still refuse a backup while CORS is enabled (409 CorsEnabled).

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

@minValue(1)
@maxValue(365)
@description('Optional. Blob and container soft-delete retention in days (new account).')
param softDeleteRetentionDays int = 7

@minValue(31)
@description('Optional. Lifecycle backstop: delete backup blobs older than this many days (new account).')
param backupBlobMaxAgeDays int = 35

resource createdAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = if (createAccount) {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // APIM reaches a firewalled account only as a trusted Azure service, with its
      // system-assigned identity; keep the bypass if you later close the firewall.
      bypass: 'AzureServices'
      defaultAction: 'Allow'
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
// (> 30) never removes a restorable backup. Lifecycle filters match blob types and
// name prefixes (which start with the container name), never suffixes.
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

@description('Required. Name of the account.')
output name string = name

@description('Required. Resource ID of the account.')
output resourceId string = account.id

// Endpoints come from the account itself (not built from the name), so accounts with
// Azure DNS zone endpoints and sovereign clouds work too. Trailing slash removed.
@description('Required. Blob service URI, for BACKUP_STORAGE__blobServiceUri.')
output blobServiceUri string = trimTrailingSlash(account.properties.primaryEndpoints.blob)

@description('Required. Table service URI, for BACKUP_STORAGE__tableServiceUri.')
output tableServiceUri string = trimTrailingSlash(account.properties.primaryEndpoints.table)

func trimTrailingSlash(url string) string => endsWith(url, '/') ? substring(url, 0, length(url) - 1) : url
