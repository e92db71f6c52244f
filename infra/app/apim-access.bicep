// One APIM service, deployed into that service's resource group (which may be in
// another subscription): grants the function identity the APIM role on this service
// only, and reads the service's system-assigned identity for the backup account grant.
//
// Why "API Management Service Operator Role" (e022efe7-f5ba-4159-bbe4-b44f577e9b61):
// it is the narrowest built-in role that holds both service/backup/action and
// service/restore/action (the Reader role has neither; the Contributor role adds every
// API, product and policy write). Besides those it has service/read and
// service/*/read; the product's workspace-gateway pre-check lists
// .../service/<name>/workspaceLinks, a read under the service, which the wildcard
// service/*/read covers. It also carries service/write, service/delete,
// managedeployments, updatehostname and updatecertificate, which the product never
// uses: where that is too much, create a custom role with exactly
// Microsoft.ApiManagement/service/read, .../service/*/read, .../service/backup/action
// and .../service/restore/action, and pass its GUID as apimRoleDefinitionId.

@description('Required. Name of the existing APIM service, in this resource group.')
param apimName string

@description('Required. Principal (object) id of the function identity.')
param principalId string

@description('Required. Resource ID of the function identity; names the assignment.')
param principalSeed string

@description('Required. Role definition GUID to grant on the service.')
param roleDefinitionId string

@description('Optional. Whether to output the service\'s system-assigned identity (needed with SystemAssignedManagedIdentity; the service must have one).')
param readSystemIdentity bool = true

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource apimRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(apim.id, principalSeed, roleDefinitionId)
  scope: apim
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Evaluated only when asked for: a service without a system-assigned identity then
// fails the deployment here, by name, instead of failing its first backup.
@description('Required. Principal id of the service\'s system-assigned identity, or empty when not read.')
output systemIdentityPrincipalId string = readSystemIdentity ? apim.identity.principalId : ''
