// The Event Grid system topic of one resource group (Resource Manager's writes in it),
// for change backups (docs/change-backups.md): policies, named values, backends and
// certificates of an APIM service emit no APIM event, and arrive only this way. A
// resource group's topic is global. Its system-assigned identity writes undeliverable
// events to the dead-letter container. One system topic per source: where the group
// already has one, leave CHANGE_EVENTS off and subscribe that topic instead.

@description('Optional. Tags for the topic.')
param tags object = {}

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: take('evgt-${resourceGroup().name}-changes', 128)
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
  }
}

@description('Required. Name of the system topic.')
output name string = topic.name

@description('Required. Principal (object) id of the topic\'s system-assigned identity.')
output principalId string = topic.identity.principalId
