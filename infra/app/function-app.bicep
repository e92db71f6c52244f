// The function app: a Flex Consumption (FC1) plan, the Linux Python 3.13 site that azd
// deploys to (tag azd-service-name: api), and its app settings. Everything the app
// reaches, it reaches with its user-assigned identity: no keys, no connection strings
// with secrets in them.

@description('Required. Name of the function app.')
param name string

@description('Required. Name of the Flex Consumption plan.')
param planName string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the plan and the site (the site adds azd-service-name).')
param tags object = {}

@description('Required. Resource ID of the app\'s user-assigned identity.')
param identityId string

@description('Required. Client id of that identity.')
param identityClientId string

@description('Required. Name of the app\'s own storage account (AzureWebJobsStorage).')
param hostStorageName string

@description('Required. Container in that account for the deployment package.')
param deploymentContainerName string

@description('Required. Name of the Application Insights component.')
param applicationInsightsName string

@minValue(1)
@maxValue(1000)
@description('Optional. Flex Consumption scale-out limit.')
param maximumInstanceCount int = 40

// The sizes Flex Consumption offers (Microsoft Learn, "Azure Functions Flex Consumption
// plan hosting", Instance memory): 512, 2,048 (the default, for most apps) and 4,096 MB.
@allowed([
  512
  2048
  4096
])
@description('Optional. Memory per instance, in MB.')
param instanceMemoryMB int = 2048

// --- the product's settings (see shared/settings/ and docs/settings.md) ---

@description('Required. APIM_SERVICES: resource IDs, comma-separated.')
param apimServices string

@description('Optional. RESTORE_TARGETS: resource IDs, comma-separated; empty means APIM_SERVICES.')
param restoreTargets string = ''

@description('Required. BACKUP_STORAGE_ACCOUNT: name of the backup storage account.')
param backupStorageAccountName string

@description('Required. BACKUP_STORAGE__blobServiceUri: blob endpoint of the backup account.')
param backupBlobServiceUri string

@description('Required. BACKUP_STORAGE__tableServiceUri: table endpoint of the backup account.')
param backupTableServiceUri string

@description('Optional. BACKUP_CONTAINER.')
param backupContainerName string = 'apim-backups'

@allowed([
  'SystemAssignedManagedIdentity'
  'UserAssignedManagedIdentity'
  'AccessKey'
])
@description('Optional. BACKUP_ACCESS_TYPE: how APIM reaches the backup account.')
param backupAccessType string = 'SystemAssignedManagedIdentity'

@description('Optional. BACKUP_IDENTITY_CLIENT_ID: client id of APIM\'s user-assigned identity (UserAssignedManagedIdentity only).')
param backupIdentityClientId string = ''

@description('Optional. With AccessKey only: URI of the Key Vault secret holding the account key; BACKUP_STORAGE_KEY becomes a Key Vault reference to it.')
param backupStorageKeySecretUri string = ''

@description('Optional. LEDGER_TABLE.')
param ledgerTableName string = 'apimbackups'

@description('Optional. OPERATIONS_TABLE.')
param operationsTableName string = 'apimoperations'

@description('Optional. BACKUP_SCHEDULE (NCRONTAB, six fields); empty means the default.')
param backupSchedule string = ''

@description('Optional. HOUSEKEEPING_SCHEDULE (NCRONTAB, six fields); empty means the default.')
param housekeepingSchedule string = ''

@description('Optional. STANDBY_PAIRS: <source>=><standby> pairs, comma-separated.')
param standbyPairs string = ''

@description('Optional. STANDBY_SCHEDULE (NCRONTAB, six fields); empty means the default.')
param standbySchedule string = ''

@description('Optional. RETENTION_DAYS (1-30).')
param retentionDays int = 30

@description('Optional. MIN_KEEP.')
param minKeep int = 1

@description('Optional. RPO_HOURS.')
param rpoHours int = 26

@description('Optional. CHANGE_QUIET_MINUTES.')
param changeQuietMinutes int = 15

@description('Optional. CHANGE_MAX_DELAY_MINUTES.')
param changeMaxDelayMinutes int = 60

@description('Optional. CHANGE_BACKUPS_PER_DAY.')
param changeBackupsPerDay int = 12

@description('Optional. CHANGE_RPO_MINUTES; 0 leaves it unset (off).')
param changeRpoMinutes int = 0

@description('Optional. OPERATION_TIMEOUT_MINUTES.')
param operationTimeoutMinutes int = 240

@description('Optional. LEDGER_HISTORY_DAYS.')
param ledgerHistoryDays int = 400

@description('Optional. MAX_PARALLEL.')
param maxParallel int = 8

@description('Optional. CERT_WARNING_DAYS.')
param certWarningDays int = 30

@description('Optional. DRILL_WARNING_DAYS.')
@minValue(1)
@maxValue(365)
param drillWarningDays int = 7

// --- callers without keys (API_AUTH) ---

@allowed([
  'functionKey'
  'entra'
])
@description('Optional. API_AUTH: functionKey (callers send a function key) or entra (App Service authentication with Entra ID in front of the app; callers send a bearer token).')
param apiAuth string = 'functionKey'

@description('Optional. With entra: application (client) id of the app registration that represents this API.')
param entraClientId string = ''

@description('Optional. With entra: application ID URI of that app registration (api://...), the audience of the callers\' tokens.')
param entraAppIdUri string = ''

// --- network ---

@description('Optional. Resource ID of a subnet (delegated to Microsoft.App/environments) for VNet integration; needed when the backup account denies public network access.')
param virtualNetworkSubnetId string = ''

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (BACKUP_STORAGE_KEY with AccessKey) resolve with this
    // identity; the site has no system-assigned identity to fall back on.
    keyVaultReferenceIdentity: identityId
    // Outbound traffic through the subnet, so that a firewalled backup account (service
    // endpoint or private endpoint on that network) lets the function in.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    // No ftpsState here: Flex Consumption refuses the property outright (ARM error
    // 51021, Site.SiteConfig.FtpsState is invalid for Flex Consumption sites). FTP is
    // off through the ftp publishing-credentials policy below, and a Flex app has no FTP
    // deployment endpoint to begin with (deployments go to a blob container).
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// No FTP or SCM basic-auth publishing: azd deploys to Flex Consumption with Entra tokens.
// This is how FTP is disabled on Flex Consumption (siteConfig.ftpsState is refused there).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

var armEndpoint = environment().resourceManager

// Settings of the Functions host and of Application Insights (not read by the product).
// No FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION / WEBSITE_CONTENT*: Flex
// Consumption rejects or ignores them (the runtime is in functionAppConfig).
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
  // The connection string names the component (instrumentation key + endpoints); it
  // carries no secret, and with local auth disabled ingestion needs the token below.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
}

// Every setting the product reads (SETTING_NAMES in shared/settings/__init__.py), except
// BACKUP_STORAGE: that is the connection-string alternative for local runs; in Azure
// the function reaches the backup account by identity (BACKUP_STORAGE__*).
// The three schedules always get a value: the host refuses to load a timer whose
// %SETTING% does not resolve.
var productSettings = {
  APIM_SERVICES: apimServices
  RESTORE_TARGETS: restoreTargets
  BACKUP_STORAGE_ACCOUNT: backupStorageAccountName
  BACKUP_CONTAINER: backupContainerName
  BACKUP_ACCESS_TYPE: backupAccessType
  BACKUP_IDENTITY_CLIENT_ID: backupAccessType == 'UserAssignedManagedIdentity' ? backupIdentityClientId : ''
  BACKUP_STORAGE__blobServiceUri: backupBlobServiceUri
  BACKUP_STORAGE__tableServiceUri: backupTableServiceUri
  BACKUP_STORAGE__clientId: identityClientId
  LEDGER_TABLE: ledgerTableName
  OPERATIONS_TABLE: operationsTableName
  BACKUP_SCHEDULE: empty(backupSchedule) ? '0 0 2 * * *' : backupSchedule
  HOUSEKEEPING_SCHEDULE: empty(housekeepingSchedule) ? '0 */5 * * * *' : housekeepingSchedule
  STANDBY_PAIRS: standbyPairs
  STANDBY_SCHEDULE: empty(standbySchedule) ? '0 0 4 * * *' : standbySchedule
  RETENTION_DAYS: string(retentionDays)
  MIN_KEEP: string(minKeep)
  RPO_HOURS: string(rpoHours)
  CHANGE_QUIET_MINUTES: string(changeQuietMinutes)
  CHANGE_MAX_DELAY_MINUTES: string(changeMaxDelayMinutes)
  CHANGE_BACKUPS_PER_DAY: string(changeBackupsPerDay)
  CHANGE_RPO_MINUTES: changeRpoMinutes > 0 ? string(changeRpoMinutes) : ''
  OPERATION_TIMEOUT_MINUTES: string(operationTimeoutMinutes)
  LEDGER_HISTORY_DAYS: string(ledgerHistoryDays)
  MAX_PARALLEL: string(maxParallel)
  CERT_WARNING_DAYS: string(certWarningDays)
  DRILL_WARNING_DAYS: string(drillWarningDays)
  // environment().resourceManager ends with a slash; the product expects none.
  ARM_ENDPOINT: endsWith(armEndpoint, '/') ? substring(armEndpoint, 0, length(armEndpoint) - 1) : armEndpoint
  ARM_CREDENTIAL: 'managedidentity'
  AZURE_CLIENT_ID: identityClientId
  API_AUTH: apiAuth
}

// With AccessKey only, and only as a Key Vault reference to a secret the user made:
// the key itself never appears in this template, its parameters or its outputs.
// (The condition sits on one line: checkov's Bicep parser cannot read a ternary whose
// `?` or `:` starts a new line.)
var useKeyVaultReference = backupAccessType == 'AccessKey' && length(backupStorageKeySecretUri) > 0
var accessKeySettings = useKeyVaultReference ? {
  BACKUP_STORAGE_KEY: '@Microsoft.KeyVault(SecretUri=${backupStorageKeySecretUri})'
} : {}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(platformSettings, productSettings, accessKeySettings)
}

// App Service authentication (Easy Auth) with Entra ID, with API_AUTH=entra: the platform
// refuses a request without a valid token for this API (401) before the app sees it,
// strips any X-MS-CLIENT-PRINCIPAL a caller sends, and passes the caller's claims to the
// app in that header; the app then requires the ApimBackup.Restore role on restores
// (shared/auth.py). An app registration cannot be created by Bicep: see infra/README.md.
//
// Token versions. The version of a token is set by the app registration of the API, not by
// the caller or the endpoint it asks (Microsoft Learn, "Protected web API: App
// registration", Accepted token version). The issuer and audiences below rely on step 1
// of infra/README.md, which sets requestedAccessTokenVersion=2: then every token for the
// API, also one a managed identity asks for (resource=<application ID URI>), is a v2
// token, issuer <login endpoint>/<tenant>/v2.0, audience the client id. Without that step
// the API gets v1 tokens: issuer https://sts.windows.net/<tenant>/, which this
// openIdIssuer does not name, and audience the resource asked for (the application ID
// URI). The URI stays in allowedAudiences for that case; whether App Service then accepts
// the v1 issuer is not documented, so keep the step.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (apiAuth == 'entra') {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        // The v2 issuer and the audiences below hold with step 1 of infra/README.md
        // (requestedAccessTokenVersion=2); see the note above this resource.
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            entraAppIdUri
            entraClientId
          ]
        }
      }
    }
  }
}

// No diagnostic setting on the site: Flex Consumption does not support diagnostic
// settings (learn.microsoft.com, Azure Functions Flex Consumption plan hosting,
// "Considerations"), so a FunctionAppLogs setting would fail the deployment or collect
// nothing. The host's and the product's logs reach the same workspace through
// Application Insights (workspace-based): AppTraces, AppRequests, AppExceptions.

@description('Required. Name of the function app.')
output name string = site.name

@description('Required. Base URL of the function app.')
output url string = 'https://${site.properties.defaultHostName}'
