// Azure Monitor alerts on the product's signals. The product logs one record per event
// that needs a person (shared/signals.py): the message is `SIGNAL <Name> <JSON fields>`,
// and the Functions host sends it to Application Insights, which stores it in the Log
// Analytics workspace as a row of AppTraces. One log search alert rule per signal,
// split by service (one alert per service), evaluated every 5 minutes over the last 15
// (records reach the workspace a few minutes late). Stateful: a rule fires once and
// resolves itself when the signal stops. See infra/README.md, "Alerts".

@description('Required. Azure region of the rules.')
param location string

@description('Optional. Tags for the resources.')
param tags object = {}

@description('Required. Short unique suffix for the resource names.')
param nameSuffix string

@description('Required. Resource ID of the Log Analytics workspace behind Application Insights.')
param logAnalyticsWorkspaceId string

@description('Required. Resource ID of the Application Insights component the function app sends to.')
param applicationInsightsId string

@description('Optional. E-mail addresses (comma-separated) that receive the alerts; empty creates no action group.')
param alertEmail string = ''

@description('Optional. Resource IDs of existing action groups that also receive every alert (Teams, webhooks, ITSM, SMS...).')
param extraActionGroupIds array = []

// Severity: 0 critical, 1 error, 2 warning. Every signal but HousekeepingStepFailed
// carries `service`; that one fires once for the app (its service dimension is empty).
var signals = [
  {
    name: 'BackupFailed'
    severity: 1
    summary: 'A backup of an APIM service failed.'
  }
  {
    name: 'RestoreFailed'
    severity: 1
    summary: 'A restore into an APIM service failed.'
  }
  {
    name: 'ScheduleOwed'
    severity: 2
    summary: 'A scheduled backup could not be started and is still owed past its grace period.'
  }
  {
    name: 'RpoBreached'
    severity: 1
    summary: 'An APIM service has no restorable backup younger than RPO_HOURS.'
  }
  {
    name: 'ChangeUnprotected'
    severity: 2
    summary: 'A configuration change of an APIM service has been unprotected (no backup since) for longer than CHANGE_RPO_MINUTES.'
  }
  {
    name: 'OperationUrlRejected'
    severity: 0
    summary: 'A recorded operation URL failed validation: the operations table may have been tampered with.'
  }
  {
    name: 'HousekeepingStepFailed'
    severity: 1
    summary: 'A step of housekeeping (settle, stranded, catch-up, changes, prune, history, rpo, unprotected) failed; the other steps ran.'
  }
]

var addresses = filter(split(alertEmail, ','), address => length(trim(address)) > 0)
var receivers = [for (address, i) in addresses: {
  name: 'email-${i}'
  emailAddress: trim(address)
  useCommonAlertSchema: true
}]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-apim-backup-${nameSuffix}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'apimbackup'
    enabled: true
    emailReceivers: receivers
  }
}

var ownActionGroups = empty(alertEmail) ? [] : [actionGroup.id]

resource signalAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for signal in signals: {
    name: 'alert-apim-backup-${signal.name}-${nameSuffix}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: 'APIM backup: ${signal.name}'
      description: '${signal.summary} The alert is per service; the matching AppTraces rows hold the fields (operationId, error...).'
      severity: signal.severity
      enabled: true
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      scopes: [
        logAnalyticsWorkspaceId
      ]
      autoMitigate: true
      // The workspace is new on a first deployment and AppTraces holds no row until the
      // app has logged one; query validation has been reported to refuse a rule whose
      // table has no data yet. The query is fixed text, checked by tests/infra.
      skipQueryValidation: true
      criteria: {
        allOf: [
          {
            query: 'AppTraces | where _ResourceId =~ "${applicationInsightsId}" and Message startswith "SIGNAL ${signal.name} " | extend fields = parse_json(substring(Message, strlen("SIGNAL ${signal.name} "))) | extend service = tostring(fields.service) | project TimeGenerated, service, Message'
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            dimensions: [
              {
                name: 'service'
                operator: 'Include'
                values: [
                  '*'
                ]
              }
            ]
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: union(ownActionGroups, extraActionGroupIds)
      }
    }
  }
]

@description('Required. Names of the alert rules, one per signal.')
output ruleNames array = [for (signal, i) in signals: signalAlerts[i].name]
