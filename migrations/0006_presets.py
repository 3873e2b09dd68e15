from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_creation_variant')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Preset',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('models.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='presets', on_delete=OnDelete.CASCADE)),
                ('tool', fields.CharField(max_length=32)),
                ('name', fields.CharField(max_length=100)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'presets', 'app': 'models', 'unique_together': (('owner_id', 'tool', 'name'),), 'pk_attr': 'id', 'table_description': "A user's saved settings for a tool: a SWOT template or a tarot spread."},
            bases=['Model'],
        ),
    ]
