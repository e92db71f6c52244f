// One event subscription of a change-events system topic (change-topic-apim.bicep,
// change-topic-group.bicep) to the function config_changed, in the Event Grid event
// schema: filtered to the event types shared/rules/changes.py counts (tests/infra
// checks both lists agree), retried for a day, then dead-lettered into the backup
// account with the topic's own identity. Event Grid checks an AzureFunction endpoint
// when the subscription is created: the function must be deployed first (main.bicep,
// changeEvents).

@description('Required. Name of the system topic, in this resource group.')
param topicName string

@description('Required. Resource ID of the function that receives the events (<function app id>/functions/config_changed).')
param functionResourceId string

@description('Required. Event types to deliver.')
param includedEventTypes array

@description('Optional. Advanced filters (all must hold): the services\' resource IDs as a subject prefix, the product\'s own actions left out.')
param advancedFilters array = []

@description('Required. Resource ID of the storage account that keeps undeliverable events.')
param deadLetterAccountId string

@description('Required. Blob container, in that account, for undeliverable events.')
param deadLetterContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: topicName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: 'apim-backup-config-changed'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionResourceId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: includedEventTypes
      advancedFilters: advancedFilters
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}
