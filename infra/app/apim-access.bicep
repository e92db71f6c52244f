// One APIM service, deployed into that service's resource group (which may be in
// another subscription): grants the function identity its APIM roles on this service
// only, and reads the service's system-assigned identity for the backup container grant.
//
// The roles (main.bicep, apimRoles): by default the built-in API Management Service
// Operator Role and Reader; with APIM_ROLES=custom the custom ones (apim-roles.bicep):
// "backup source" on every service in APIM_SERVICES, "restore target" on every service
// in RESTORE_TARGETS, both on a service that is both; none while APIM_ROLES=define.

@description('Required. Name of the existing APIM service, in this resource group.')
param apimName string

@description('Required. Principal (object) id of the function identity; also names the assignments.')
param principalId string

@description('Required. Role definition GUIDs to grant on the service.')
param roleDefinitionIds array

@description('Optional. Whether to output the service\'s system-assigned identity (needed with SystemAssignedManagedIdentity; the service must have one).')
param readSystemIdentity bool = true

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource apimRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in roleDefinitionIds: {
    name: guid(apim.id, principalId, roleId)
    scope: apim
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Evaluated only when asked for: a service without a system-assigned identity then
// fails the deployment here, by name, instead of failing its first backup.
@description('Required. Principal id of the service\'s system-assigned identity, or empty when not read.')
output systemIdentityPrincipalId string = readSystemIdentity ? apim.identity.principalId : ''
