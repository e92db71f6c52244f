// The two custom roles the function identity holds on APIM services: exactly the
// Resource Manager actions the product calls, and restore only where a restore may go.
// Deployed at subscription scope (role definitions are subscription-level objects);
// assignableScopes lists the resource groups of the services, which may be in other
// subscriptions of the tenant.
targetScope = 'subscription'

@description('Required. Short, unique suffix for the role names (custom role names are unique per tenant).')
param nameSuffix string

@description('Required. Scopes (this subscription and the services\' resource groups) where the backup-source role may be assigned.')
param sourceScopes array

@description('Required. Scopes (this subscription and the restore targets\' resource groups) where the restore-target role may be assigned.')
param restoreScopes array

// Actions both roles need, each for one call of the product:
var readActions = [
  // GET the service: provisioning state (busy?), SKU (tier pre-checks, the ledger's
  // Sku), identity, hostnames and certificates for the settings manifest and drift.
  'Microsoft.ApiManagement/service/read'
  // GET .../workspaceLinks: the workspace-gateway pre-check (backup and restore are
  // refused by APIM while a workspace gateway exists).
  'Microsoft.ApiManagement/service/workspaceLinks/read'
  // GET the operation URL a backup or restore answers (Location: {service}/operationresults/{id}):
  // Resource Manager authorizes that poll as its own action, which service/read does
  // not cover; without it every poll is a 403 and no operation ever settles.
  'Microsoft.ApiManagement/service/operationresults/read'
  // GET {service}/providers/Microsoft.Insights/diagnosticSettings: the service's Azure
  // Monitor settings, which APIM's backup omits, go into the settings manifest (source)
  // and the drift check after a restore (target).
  'Microsoft.Insights/diagnosticSettings/read'
]

resource sourceRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-backup-source', nameSuffix)
  properties: {
    roleName: 'APIM Backup Source (${nameSuffix})'
    description: 'Lets the APIM backup function read a service and start its backup; nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: concat(readActions, [
          // POST .../backup: start a backup (scheduled, on demand, owed).
          'Microsoft.ApiManagement/service/backup/action'
        ])
        notActions: []
      }
    ]
    assignableScopes: sourceScopes
  }
}

resource restoreRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-backup-restore-target', nameSuffix)
  properties: {
    roleName: 'APIM Backup Restore Target (${nameSuffix})'
    description: 'Lets the APIM backup function read a service and restore a backup into it; nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: concat(readActions, [
          // POST .../restore: restore a backup into this service (HTTP, runbook, standby sync).
          'Microsoft.ApiManagement/service/restore/action'
        ])
        notActions: []
      }
    ]
    assignableScopes: restoreScopes
  }
}

@description('Required. GUID of the backup-source role.')
output sourceRoleId string = sourceRole.name

@description('Required. GUID of the restore-target role.')
output restoreRoleId string = restoreRole.name
