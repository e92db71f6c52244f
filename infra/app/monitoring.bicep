// Log Analytics + workspace-based Application Insights with local (key) authentication
// disabled: telemetry is accepted only with an Entra token, which the function host
// gets for its identity from APPLICATIONINSIGHTS_AUTHENTICATION_STRING.

@description('Required. Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Required. Name of the Application Insights component.')
param applicationInsightsName string

@description('Required. Azure region.')
param location string

@description('Optional. Tags for the resources.')
param tags object = {}

@description('Required. Principal id of the identity that sends telemetry; also names the role assignment.')
param publisherPrincipalId string

@minValue(30)
@maxValue(730)
@description('Optional. Log retention in days.')
param retentionInDays int = 30

var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

resource publisherRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, publisherPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('Required. Name of the Application Insights component.')
output applicationInsightsName string = applicationInsights.name

@description('Required. Resource ID of the Application Insights component.')
output applicationInsightsId string = applicationInsights.id

@description('Required. Resource ID of the Log Analytics workspace.')
output logAnalyticsId string = logAnalytics.id
