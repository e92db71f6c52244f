// The Event Grid system topic of one APIM service, in the service's resource group and
// region, for change backups (docs/change-backups.md): APIM publishes its own events
// for APIs, products, releases, users, subscriptions and gateways there. Its
// system-assigned identity writes undeliverable events to the dead-letter container
// (main.bicep grants it that container only). Azure allows one system topic per
// source: where the service already has one, leave CHANGE_EVENTS off and subscribe
// that topic instead (docs/change-backups.md, "Subscribing").

@description('Required. Name of the existing APIM service, in this resource group.')
param apimName string

@description('Optional. Tags for the topic.')
param tags object = {}

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: take('evgt-${apimName}-changes', 128)
  location: apim.location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: apim.id
    topicType: 'Microsoft.ApiManagement.Service'
  }
}

@description('Required. Name of the system topic.')
output name string = topic.name

@description('Required. Principal (object) id of the topic\'s system-assigned identity.')
output principalId string = topic.identity.principalId
