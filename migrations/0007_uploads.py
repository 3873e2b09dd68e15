from tortoise import migrations
from tortoise.migrations import operations as ops
from resolvers.core.models import UploadKind, UploadStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_presets')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Upload',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='uploads', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='IMAGE: IMAGE\nAUDIO: AUDIO', enum_type=UploadKind, max_length=8)),
                ('content_type', fields.CharField(max_length=64)),
                ('size', fields.BigIntField()),
                ('key', fields.CharField(unique=True, max_length=200)),
                ('status', fields.CharEnumField(default=UploadStatus.PENDING, description='PENDING: PENDING\nREADY: READY\nREJECTED: REJECTED', enum_type=UploadStatus, max_length=10)),
                ('sha256', fields.CharField(null=True, max_length=64)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'uploads', 'app': 'models', 'indexes': [Index(fields=['owner_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A file a user sends to object storage through a short-lived URL, then uses by id.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Creation',
            name='output_key',
            field=fields.CharField(null=True, max_length=200),
        ),
    ]
