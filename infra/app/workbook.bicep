// The Azure Monitor workbook "APIM backup": per service, the newest successful backup
// against RPO_HOURS, the last 30 nights, backup durations and sizes, the last restore
// (drill), open debts and the product's signals. It reads the function app's log records
// in the workspace (AppTraces): the SIGNAL records (message `SIGNAL <Name> <JSON>`) and
// the backup and restore outcome records (fields in the Properties column). The queries
// are workbook.json, loaded as text so that tests/infra can check every field they use
// against what the product emits. See infra/README.md, "Workbook".

@description('Required. Azure region of the workbook.')
param location string

@description('Optional. Tags for the resources.')
param tags object = {}

@description('Required. Short unique suffix, for the workbook\'s name.')
param nameSuffix string

@description('Required. Resource ID of the Log Analytics workspace behind Application Insights.')
param logAnalyticsWorkspaceId string

@description('Required. Resource ID of the Application Insights component the function app sends to.')
param applicationInsightsId string

@description('Required. RPO_HOURS of the function app, which the RPO view measures against.')
param rpoHours int

// Placeholders of workbook.json, filled here: the workspace the queries run on, the
// component whose records they read, and the RPO.
// On one line: checkov's Bicep parser cannot read a call broken over lines.
var serialized = replace(replace(replace(loadTextContent('workbook.json'), '__LOG_ANALYTICS_ID__', logAnalyticsWorkspaceId), '__APPLICATION_INSIGHTS_ID__', applicationInsightsId), '__RPO_HOURS__', string(rpoHours))

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'apim-backup-workbook', nameSuffix)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'APIM backup'
    category: 'workbook'
    sourceId: logAnalyticsWorkspaceId
    serializedData: serialized
    description: 'Per APIM service: RPO, the last 30 nights, backup durations and sizes, restore drills, open debts and signals, from the function app\'s log records.'
    version: 'Notebook/1.0'
  }
}

@description('Required. Resource ID of the workbook.')
output workbookId string = workbook.id
